"""Steps the Cachito API tests share, done the way clients and build hosts do them: requests
created over HTTP, and results arriving as a build host's do (the bundle and packages.json
uploaded under the job's artifact prefix, then the state machine's result message on the
build-events queue)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from typing import Any

import boto3

from chalicelib.adapters.cachito_models import CachitoRequestModel
from chalicelib.domain.cachito.job_kinds import artifact_prefix
from chalicelib.host_protocol import MediaType
from tests.conftest import Kiln

V1 = "/api/v1"
REPO = "https://github.com/release-engineering/retrodep.git"
REF = "c50b93a32df1c9d700e3e80996845bc2e13be848"
OTHER_REF = "a7ac8d4c0b7fe90d51fb911511cbf6939655c877"
GZIP = {"Accept": "application/gzip"}

#: one npm package with a dev and a runtime dependency, and a gomod module, as a host writes
PACKAGES: list[dict[str, Any]] = [
    {
        "name": "client",
        "type": "npm",
        "version": "1.0.0",
        "path": "client",
        "purl": "pkg:github/release-engineering/retrodep@" + REF + "#client",
        "canonical_purl": "pkg:npm/client@1.0.0",
        "dependencies": [
            {
                "name": "chai",
                "type": "npm",
                "version": "4.2.0",
                "dev": True,
                "replaces": None,
                "purl": "pkg:npm/chai@4.2.0",
                "canonical_purl": "pkg:npm/chai@4.2.0",
                "sha256": "ab" * 32,
                "bundle_path": "deps/npm/chai/chai-4.2.0.tgz",
                "requires": [],
            },
            {
                "name": "abbrev",
                "type": "npm",
                "version": "1.1.1",
                "dev": False,
                "replaces": None,
                "purl": "pkg:npm/abbrev@1.1.1",
                "canonical_purl": "pkg:npm/abbrev@1.1.1",
                "sha256": "cd" * 32,
                "bundle_path": "deps/npm/abbrev/abbrev-1.1.1.tgz",
                "requires": [],
            },
        ],
    },
    {
        "name": "github.com/release-engineering/retrodep/v2",
        "type": "gomod",
        "version": "v2.1.1",
        "purl": "pkg:golang/github.com%2Frelease-engineering%2Fretrodep%2Fv2@v2.1.1",
        "canonical_purl": "pkg:golang/github.com/release-engineering/retrodep/v2@v2.1.1",
        "dependencies": [
            {
                "name": "github.com/pkg/errors",
                "type": "gomod",
                "version": "v0.8.1",
                "replaces": {"name": "github.com/pkg/errors", "type": "gomod", "version": "v0.8.0"},
                "purl": "pkg:golang/github.com%2Fpkg%2Ferrors@v0.8.1",
                "canonical_purl": "pkg:golang/github.com/pkg/errors@v0.8.1",
                "sha256": None,
                "bundle_path": None,
                "requires": [],
            },
            {
                "name": "abbrev",
                "type": "npm",
                "version": "1.1.1",
                "dev": False,
                "replaces": None,
                "purl": "pkg:npm/abbrev@1.1.1",
                "canonical_purl": "pkg:npm/abbrev@1.1.1",
                "sha256": None,
                "bundle_path": None,
                "requires": [],
            },
        ],
    },
]
ENVIRONMENT = {
    "GOSUMDB": {"value": "off", "kind": "literal"},
    "GOCACHE": {"value": "deps/gomod", "kind": "path"},
}
CONFIG_FILES = [
    {
        "path": "app/client/package-lock.json",
        "content": base64.b64encode(b'{"lockfileVersion": 3}').decode(),
        "type": "base64",
    }
]


def body(**changes: Any) -> dict[str, Any]:
    """A valid POST body (gomod by default), with ``changes``."""
    return {"repo": REPO, "ref": REF, **changes}


def create(kiln: Kiln, tenant: str = "demo", role: str = "user", **changes: Any) -> Any:
    """POST a request; returns its 201 JSON."""
    response = kiln.call("POST", f"{V1}/requests", body(**changes), tenant=tenant, role=role)
    assert response.status_code == 201, response.body
    return response.json_body


def record(request_id: int) -> CachitoRequestModel:
    return CachitoRequestModel.get(int(request_id), consistent_read=True)


def s3() -> Any:
    return boto3.client("s3", region_name="us-east-1")


def bundle_archive(files: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (files or {"app/main.go": b"package main\n", "deps/": b""}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def progress(kiln: Kiln, request_id: int, reason: str) -> None:
    """A host's step report, with the reason Cachito shows."""
    job_id = record(request_id).job_id
    kiln.build_events(
        {"type": "progress", "job_id": job_id, "status": "building_image", "reason": reason}
    )


def complete(
    kiln: Kiln,
    request_id: int,
    packages: list[dict[str, Any]] | None = None,
    bundle: bytes | None = None,
    log: bytes | None = b"Fetching the application source\nDone\n",
) -> bytes:
    """Finish a request as its build host does: bundle.tar.gz and packages.json under the
    job's artifact prefix, the log, then the result message. Returns the bundle's bytes."""
    job_id = record(request_id).job_id
    assert job_id, "the request has no job"
    prefix = artifact_prefix(request_id)
    data = bundle if bundle is not None else bundle_archive()
    document = {
        "packages": PACKAGES if packages is None else packages,
        "environment_variables": ENVIRONMENT,
        "configuration_files": CONFIG_FILES,
    }
    encoded = json.dumps(document).encode()
    bucket = kiln.provisioned.bucket
    s3().put_object(Bucket=bucket, Key=f"{prefix}bundle.tar.gz", Body=data)
    s3().put_object(Bucket=bucket, Key=f"{prefix}packages.json", Body=encoded)
    log_key = f"jobs/{job_id}/build.log"
    if log is not None:
        s3().put_object(Bucket=bucket, Key=log_key, Body=log)
    artifacts = [
        {
            "key": f"{prefix}bundle.tar.gz",
            "type": MediaType.SOURCE_BUNDLE,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
        {
            "key": f"{prefix}packages.json",
            "type": MediaType.PACKAGE_DATA,
            "size": len(encoded),
            "sha256": hashlib.sha256(encoded).hexdigest(),
        },
    ]
    kiln.build_events(
        {
            "type": "result",
            "outcome": "success",
            "job_id": job_id,
            "output": {"artifacts": artifacts, "log_key": log_key if log is not None else ""},
        }
    )
    return data


def fail(kiln: Kiln, request_id: int, error: str, cause: str = "") -> None:
    """The host's failure, as the state machine reports it."""
    job_id = record(request_id).job_id
    kiln.build_events(
        {
            "type": "result",
            "outcome": "failure",
            "job_id": job_id,
            "error": {"Error": error, "Cause": cause},
        }
    )


def get(kiln: Kiln, path: str, **options: Any) -> Any:
    return kiln.call("GET", f"{V1}{path}", **options)


def patch(kiln: Kiln, request_id: int, changes: Any, role: str = "worker") -> Any:
    return kiln.call("PATCH", f"{V1}/requests/{request_id}", changes, role=role)
