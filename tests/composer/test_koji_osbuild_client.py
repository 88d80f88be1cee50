"""koji-osbuild's way through Kiln, over HTTP: a service account's token from the OAuth2
endpoint, a compose request shaped as the plugin's ``ComposeRequest`` (with ``koji``), a 401
for a token that expired in flight answered by fetching a new one, polling to success, then
the logs and manifests the plugin attaches and the ``koji_status.build_id`` it tags, with the
import seen by the Koji hub stand-in.

The client (tests/composer/composer_client.py) behaves as the plugin's; the image builds are
reported as hosts report them, and the import is the build host's own run
(tests/composer/koji_helpers.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local.token_server import TokenServer
from tests.composer.composer_client import ComposerClient
from tests.composer.helpers import MIRROR
from tests.composer.koji_helpers import KOJI_JOB_TYPES, PLAN, build_images, jobs, run_import
from tests.koji_cg_hub import COMPLETE, KojiCGHub
from tests.served import Served, served_kiln


@pytest.fixture
def served(signing_keys: tuple[bytes, str]) -> Iterator[Served]:
    with served_kiln(signing_keys) as running:
        yield running


def test_koji_osbuilds_compose_goes_through_token_refresh_to_a_koji_import(
    served: Served, signing_keys: tuple[bytes, str], tmp_path: Path
) -> None:
    kiln = served.kiln
    with (
        KojiCGHub(tmp_path / "hub") as hub,
        TokenServer(tmp_path / "state", signing_keys[0], ttl_seconds=1) as tokens,
    ):
        kiln.configure(koji_hubs=hub.hub_setting())
        kiln.register_host("x86_64", xname="x86-host", job_types=KOJI_JOB_TYPES)
        client_id, secret = tokens.accounts.create("demo", "user")
        client = ComposerClient(served.url, client_id, secret, tokens.token_url)

        client.fetch_token()
        time.sleep(1.5)  # the token expires while the request is on its way
        request = {
            "distribution": "debian-12",
            "koji": {
                "name": "debian-cloud",
                "version": "12",
                "release": "1.kiln",
                "server": hub.hub_url,
                "task_id": 7,
            },
            "image_requests": [
                {
                    "architecture": "x86_64",
                    "image_type": "guest-image",
                    "repositories": [{"baseurl": MIRROR, "rhsm": False}],
                }
            ],
        }
        created = client.request("POST", "compose", request, refresh=False)
        assert created.status_code == 201, created.text
        assert (client.unauthorized, client.fetched) == (1, 2)
        compose_id = created.json()["id"]

        build_images(kiln, compose_id)
        (message,) = jobs(kiln, compose_id, "koji-import")
        assert run_import(kiln, message, tmp_path, hub.hub_setting())["outcome"] == "success"

        status = client.request("GET", f"composes/{compose_id}").json()
        assert status["status"].lower() == "success"
        build_id = status["koji_status"]["build_id"]
        assert hub.builds[build_id]["state"] == COMPLETE
        assert hub.builds[build_id]["nvr"] == "debian-cloud-12-1.kiln"
        (imported,) = hub.imports
        assert imported["metadata"]["build"]["task_id"] == 7
        logs = client.request("GET", f"composes/{compose_id}/logs").json()
        assert logs["koji"]["import"] == {"build_id": build_id}
        assert len(logs["image_builds"]) == 1
        manifests = client.request("GET", f"composes/{compose_id}/manifests").json()
        assert manifests.get("manifests") == [PLAN]
