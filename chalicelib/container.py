"""Clients and stores, built lazily on first use; tests override any of them."""

from __future__ import annotations

import functools
from typing import Any

from botocore.config import Config

from chalicelib.adapters import aws_clients
from chalicelib.adapters.artifacts import ArtifactStore
from chalicelib.adapters.dead_letters import DeadLetters
from chalicelib.adapters.models import bind_tables
from chalicelib.adapters.signing import Signer
from chalicelib.adapters.work_queue import WorkQueue
from chalicelib.adapters.workflows import Workflows
from chalicelib.config import (
    GLANCE_IMPORTS_QUEUE,
    Settings,
    dead_letter_queue_name,
    queue_names,
)
from chalicelib.config import settings as load_settings
from chalicelib.domain.appregistry.releases import AppRegistry


class Container:
    def __init__(self, settings: Settings | None = None, **clients: Any) -> None:
        """``clients`` replaces boto3 clients by service name (e.g. ``s3=fake``), for tests."""
        self._settings = settings
        self._clients: dict[str, Any] = dict(clients)
        self._tables_bound = False

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = aws_clients.client(
                service, self.settings.region, _CONFIGS.get(service)
            )
            if service == "s3":
                self._clients[service].meta.events.register(
                    "before-sign.s3.UploadPart", _unsigned_payload
                )
        return self._clients[service]

    def bind_tables(self) -> None:
        if not self._tables_bound:
            bind_tables(self.settings.table_prefix, self.settings.region)
            self._tables_bound = True

    @functools.cached_property
    def artifacts(self) -> ArtifactStore:
        return ArtifactStore(
            self._client("s3"), self.settings.artifact_bucket, self.settings.presign_seconds
        )

    @functools.cached_property
    def app_registry(self) -> AppRegistry:
        """Kiln's app registry (OMPS releases), its blobs in the artifact bucket."""
        return AppRegistry(self.artifacts, self.settings)

    @functools.cached_property
    def workflows(self) -> Workflows:
        return Workflows(self._client("stepfunctions"), self.settings.state_machine_arn)

    @functools.cached_property
    def glance_imports(self) -> WorkQueue:
        """Glance imports (web-download, glance-direct) and build outputs to hash."""
        return WorkQueue(self._client("sqs"), GLANCE_IMPORTS_QUEUE)

    @functools.cached_property
    def signer(self) -> Signer:
        """The KMS key that signs build provenance (its public key cached per process)."""
        return Signer(self._client("kms"), self.settings.provenance_key_id)

    @functools.cached_property
    def dead_letters(self) -> DeadLetters:
        """Every queue's dead-letter queue, which the cleanup schedule reports."""
        names = [dead_letter_queue_name(name) for name in queue_names()]
        return DeadLetters(self._client("sqs"), names)


#: S3: checksums only where S3 requires them. Kiln hashes image data itself as it streams
#: (MD5, SHA-512); botocore's default CRC32 on every part would make it encode each upload as
#: aws-chunked with a trailer and read every download twice.
_CONFIGS = {
    "s3": Config(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=20,
    )
}


def _unsigned_payload(request: Any, **_: Any) -> None:
    """An uploaded part's body is not hashed again for the signature (UNSIGNED-PAYLOAD, which
    botocore sends over https anyway): Kiln hashes image data once, as it streams."""
    request.headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"


_current: list[Container] = []


def container() -> Container:
    """The process's container (one per Lambda sandbox), made on first use."""
    if not _current:
        _current.append(Container())
    box = _current[0]
    box.bind_tables()
    return box


def use(replacement: Container) -> None:
    """The test hook: make ``replacement`` the container every handler uses."""
    _current.clear()
    _current.append(replacement)
