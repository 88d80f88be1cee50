"""Kiln's app served over HTTP by Kiln's own local front (infra/local/front.py, as `make up`
serves it; with ``chalice_server``, also by chalice's local server, where every route is a
Chalice route as behind API Gateway), against moto in-process: for tests that must go through
real HTTP (fuzzing, unknown methods, raw bodies) without starting the whole stack."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from chalice.config import Config
from chalice.local import ChaliceRequestHandler, create_local_server
from chalice.test import Client
from moto import mock_aws

from chalicelib import container as container_module
from infra import resources
from infra.local import moto_fidelity
from infra.local.provision import provision
from tests.conftest import (
    BUCKET,
    IN_PROCESS,
    REGION,
    ROOT,
    Kiln,
    settings_for,
    use_test_aws_env,
)


@dataclasses.dataclass
class Served:
    url: str  # http://127.0.0.1:<port>, the root every face's paths hang from
    kiln: Kiln  # tokens, and the test client for what is not HTTP (events)
    chalice_url: str = ""  # chalice's local server, when asked for

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        tenant: str = "demo",
        role: str = "user",
        content_type: str = "application/json",
    ) -> requests.Response:
        """A request with a bearer token; ``body``: bytes as they are, anything else as JSON."""
        headers = {
            "Authorization": f"Bearer {self.kiln.token(tenant, role)}",
            "Content-Type": content_type,
            "Accept": "application/json",
        }
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        return requests.request(method, self.url + path, data=data, headers=headers, timeout=60)


@contextlib.contextmanager
def served_kiln(signing_keys: tuple[bytes, str], chalice_server: bool = False) -> Iterator[Served]:
    from infra.local.front import create_front

    private_pem, public_pem = signing_keys
    moto_fidelity.atomic_dynamodb_writes()  # the front serves requests on many threads
    with pytest.MonkeyPatch.context() as patch, mock_aws(config=IN_PROCESS):  # type: ignore[arg-type]
        use_test_aws_env(patch)
        patch.setattr(ChaliceRequestHandler, "log_message", lambda *_args: None)
        provisioned = provision(REGION, "kiln", BUCKET, resources.Timing())
        container_module.use(container_module.Container(settings_for(provisioned, public_pem)))
        import app as app_module

        chalice_app = app_module.app
        app_class = chalice_app.__class__
        config = Config.create(chalice_stage="dev", app_name="kiln", project_dir=str(ROOT))
        # chalice's server first: both make the app a LocalChalice, the front only if it is not
        local = create_local_server(chalice_app, config, "127.0.0.1", 0) if chalice_server else None
        front = create_front(
            chalice_app, config, "127.0.0.1", 0, streaming_routes=app_module.streaming_routes
        )
        servers: list[Any] = [front] + ([local.server] if local else [])
        threads = [
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            for s in servers
        ]
        for thread in threads:
            thread.start()
        try:
            with Client(chalice_app) as client:
                url, *chalice_url = (f"http://127.0.0.1:{s.server_address[1]}" for s in servers)
                kiln = Kiln(client, private_pem, provisioned)
                yield Served(url, kiln, chalice_url[0] if chalice_url else "")
        finally:
            for server in servers:
                server.shutdown()
                server.server_close()
            for thread in threads:
                thread.join(timeout=10)
            chalice_app.__class__ = app_class
            container_module._current.clear()
