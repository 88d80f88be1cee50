"""The ``aws.s3`` upload target and the upload registry (types, options, failure messages)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from builders import uploads
from builders.backends.base import DISK_QCOW2, DISK_RAW, BuildError
from chalicelib.host_protocol import ERROR_LIMIT, Failure, FailureCode


def context(tmp_path: Path, disks: list[tuple[str, str]]) -> uploads.UploadContext:
    def no_clients(service: str, region: str) -> Any:
        raise AssertionError(f"aws.s3 needs no {service} client")

    made = []
    for key, kind in disks:
        path = tmp_path / key.rsplit("/", 1)[-1]
        path.write_bytes(b"disk")
        made.append(uploads.Disk(key, kind, path, 4, "0" * 64))
    return uploads.UploadContext(
        job_id="job-1", arch="x86_64", bucket="kiln-artifacts", disks=made, clients=no_clients
    )


def test_aws_s3_reports_the_published_disk(tmp_path: Path) -> None:
    spec = uploads.parse({"type": "aws.s3", "options": {"region": "eu-west-1"}})
    assert spec is not None
    assert spec.status("running") == {"type": "aws.s3", "status": "running", "options": {}}
    ctx = context(tmp_path, [("images/i-1/disk.qcow2", DISK_QCOW2)])
    assert uploads.run(spec, ctx) == {
        "type": "aws.s3",
        "status": "success",
        "options": {"bucket": "kiln-artifacts", "key": "images/i-1/disk.qcow2"},
    }


def test_aws_s3_takes_the_first_disk_published(tmp_path: Path) -> None:
    spec = uploads.Spec({"type": "aws.s3", "options": None})
    ctx = context(tmp_path, [("images/i/a.raw", DISK_RAW), ("images/i/b.qcow2", DISK_QCOW2)])
    assert uploads.run(spec, ctx)["options"]["key"] == "images/i/a.raw"


def test_aws_s3_without_a_disk_fails(tmp_path: Path) -> None:
    spec = uploads.Spec({"type": "aws.s3", "options": {"region": "eu-west-1"}})
    with pytest.raises(BuildError, match=r"^upload to aws.s3 failed: the build made no disk"):
        uploads.run(spec, context(tmp_path, []))


def test_no_upload_is_none() -> None:
    assert uploads.parse(None) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"type": "gcp", "options": {}}, "upload to gcp failed: this host has no such target"),
        ({"type": "azure"}, "upload to azure failed: this host has no such target (aws, aws.s3)"),
        ("aws", "upload to ? failed: upload must be"),
        ({"options": {}}, "upload to ? failed: upload must be"),
        ({"type": "aws.s3", "options": []}, "upload to aws.s3 failed: options must be an object"),
    ],
)
def test_unknown_or_malformed_uploads_fail(value: Any, message: str) -> None:
    with pytest.raises(BuildError) as failed:
        uploads.parse(value)
    assert str(failed.value).startswith(message)
    assert failed.value.code is FailureCode.UPLOAD_FAILED


@pytest.mark.parametrize("code", [FailureCode.UPLOAD_FAILED, FailureCode.REGISTER_FAILED])
def test_failure_messages_fit_send_task_failure(code: FailureCode) -> None:
    message = uploads.failure("aws", "x" * 1000, code)
    error = Failure(code, message).to_error()
    assert error == f"{code.wire}: {message}"  # nothing cut: it fits as it is
    assert len(error) == ERROR_LIMIT and message.endswith("...")
    assert uploads.failure("aws", "short\n  reason") == "upload to aws failed: short reason"
