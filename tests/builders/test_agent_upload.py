"""The build host's composer additions against the real state machine on moto server: the
job's ``upload`` (aws: raw disk -> EBS snapshot -> AMI; aws.s3) and live log chunks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from builders import uploads
from builders.backends.base import DISK_RAW, Artifact, BuildContext
from builders.backends.noop import NoopBackend
from chalicelib.host_protocol import BuildOutput
from tests.builders import test_agent as base
from tests.conftest import BUCKET, MotoStack

UPLOAD_REGION = "eu-north-1"
SHARED = "210987654321"


@pytest.fixture
def disk_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """noop builds also make a small sparse raw disk (as a composer recipe's ``disk:
    {formats: [raw]}`` would)."""
    build = NoopBackend.build

    def build_with_disk(self: NoopBackend, ctx: BuildContext) -> list[Artifact]:
        artifacts = build(self, ctx)
        disk = ctx.out_dir / "disk.raw"
        with disk.open("wb") as f:
            f.truncate(3 * 1024 * 1024)
            f.seek(1024 * 1024)
            f.write(b"\x01" * 4096)
        ctx.log(f"I: test: wrote {disk.name}")
        return [*artifacts, Artifact(path=disk, type=DISK_RAW)]

    monkeypatch.setattr(NoopBackend, "build", build_with_disk)


@pytest.fixture
def harness(moto_server: MotoStack, tmp_path: Path, disk_builds: None) -> Any:
    """The agent harness, its noop builds making a raw disk too."""
    with base.Harness(moto_server, tmp_path) as h:
        yield h


def chunk_keys(harness: base.Harness, prefix: str) -> list[str]:
    listed = harness.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in listed)


def read(harness: base.Harness, key: str) -> bytes:
    return bytes(harness.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def start(harness: base.Harness, recipe: str, **extra: Any) -> dict[str, Any]:
    """A create job as the API sends a composer's: with its upload and log chunk prefix."""
    job = harness.start_job(recipe, start=False, **extra)
    job["log_chunk_prefix"] = f"jobs/{job['job_id']}/log/"
    harness.start(job)
    return job


def test_aws_upload_registers_an_ami_and_the_log_goes_up_live(harness: base.Harness) -> None:
    upload = {"type": "aws", "options": {"region": UPLOAD_REGION, "share_with_accounts": [SHARED]}}
    job = start(harness, "sleep: 4\n", upload=upload)
    job_id, prefix = job["job_id"], job["log_chunk_prefix"]
    harness.wait_for_status(job_id, "building_image")
    deadline = time.time() + 10
    while not chunk_keys(harness, prefix):  # chunks while the build still runs
        assert time.time() < deadline, "no log chunk during the build"
        time.sleep(0.2)
    assert harness.agent.answers.get(job_id) is None
    assert chunk_keys(harness, prefix)[0] == f"{prefix}000000.log"

    result = harness.result(job_id)
    assert result["outcome"] == "success", result
    output = result["output"]
    ami = output["upload_status"]["options"]["ami"]
    assert output["upload_status"] == {
        "type": "aws",
        "status": "success",
        "options": {"ami": ami, "region": UPLOAD_REGION},
    }
    ec2 = boto3.client("ec2", region_name=UPLOAD_REGION)
    (image,) = ec2.describe_images(ImageIds=[ami])["Images"]
    assert image["Name"] == f"kiln-{job_id}" and image["BootMode"] == "uefi"
    shared = ec2.describe_image_attribute(ImageId=ami, Attribute="launchPermission")
    assert shared["LaunchPermissions"] == [{"UserId": SHARED}]
    (snapshot,) = ec2.describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "tag:kiln:job-id", "Values": [job_id]}]
    )["Snapshots"]
    ebs = boto3.client("ebs", region_name=UPLOAD_REGION)
    blocks = ebs.list_snapshot_blocks(SnapshotId=snapshot["SnapshotId"])["Blocks"]
    assert [b["BlockIndex"] for b in blocks] == [2]  # the one non-zero 512 KiB block

    progress = harness.progress(job_id)
    assert [m["status"] for m in progress] == [
        "fetching_recipe",
        "waiting_for_repos",
        "building_image",
        "uploading",
        "registering",
    ]
    running = {"type": "aws", "status": "running", "options": {}}
    assert [m.get("upload_status") for m in progress] == [None, None, None, running, running]

    # the chunks, in order, are the whole log
    log = read(harness, output["log_key"])
    keys = chunk_keys(harness, prefix)
    assert keys == [f"{prefix}{n:06d}.log" for n in range(len(keys))] and len(keys) >= 2
    assert b"".join(read(harness, key) for key in keys) == log
    assert b"== uploading" in log and f"AMI {ami}".encode() in log


def test_aws_s3_upload_reports_the_disk_key(harness: base.Harness) -> None:
    upload = {"type": "aws.s3", "options": {"region": UPLOAD_REGION}}
    job = start(harness, "name: s3\n", upload=upload)
    result = harness.result(job["job_id"])
    assert result["outcome"] == "success", result
    key = f"images/{job['image_id']}/disk.raw"
    assert result["output"]["upload_status"] == {
        "type": "aws.s3",
        "status": "success",
        "options": {"bucket": BUCKET, "key": key},
    }
    assert {a["key"] for a in result["output"]["artifacts"]} >= {key}
    statuses = [m["status"] for m in harness.progress(job["job_id"])]
    assert statuses[-1] == "uploading"


def test_unknown_upload_type_fails_the_job_before_building(harness: base.Harness) -> None:
    job = start(harness, "name: gcp\n", upload={"type": "gcp", "options": {}})
    result = harness.result(job["job_id"])
    assert result["outcome"] == "failure"
    assert result["error"]["Error"].startswith(
        "UploadFailed: upload to gcp failed: this host has no such target"
    )
    assert harness.progress(job["job_id"]) == []
    log = read(harness, job["log_key"])
    keys = chunk_keys(harness, job["log_chunk_prefix"])
    assert b"".join(read(harness, key) for key in keys) == log and b"upload to gcp" in log


def test_a_failed_upload_fails_the_job_clearly(moto_server: MotoStack, tmp_path: Path) -> None:
    """The plain noop backend makes no raw disk: the upload, not the build, fails."""
    upload = {"type": "aws", "options": {"region": UPLOAD_REGION}}
    with base.Harness(moto_server, tmp_path) as harness:
        job = start(harness, "name: no disk\n", upload=upload)
        result = harness.result(job["job_id"])
    assert result["outcome"] == "failure"
    assert result["error"]["Error"] == (
        f"UploadFailed: upload to aws failed: the build made no {DISK_RAW} disk image "
        "(the recipe needs that format)"
    )
    statuses = [m["status"] for m in harness.progress(job["job_id"])]
    assert statuses[-1] == "uploading"
    assert (
        boto3.client("ec2", region_name=UPLOAD_REGION).describe_images(Owners=["self"])["Images"]
        == []
    )


class RefusingRegistration:
    """An EC2 client whose RegisterImage is refused."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def register_image(self, **_: Any) -> None:
        error: Any = {"Error": {"Code": "InvalidParameter", "Message": "no UEFI here"}}
        raise ClientError(error, "RegisterImage")


def test_a_refused_ami_registration_answers_register_failed(
    moto_server: MotoStack, tmp_path: Path, disk_builds: None
) -> None:
    real = uploads.Clients(moto_server.endpoint)

    def clients(service: str, region: str) -> Any:
        client = real(service, region)
        return RefusingRegistration(client) if service == "ec2" else client

    upload = {"type": "aws", "options": {"region": UPLOAD_REGION}}
    with base.Harness(moto_server, tmp_path, clients=clients) as harness:
        job = start(harness, "name: no ami\n", upload=upload)
        result = harness.result(job["job_id"])
    assert result["outcome"] == "failure"
    error = result["error"]["Error"]
    assert error.startswith(f"RegisterFailed: upload to aws failed: AMI kiln-{job['job_id']} ")
    assert error.endswith(
        "(InvalidParameter) when calling the RegisterImage operation: no UEFI here"
    )
    statuses = [m["status"] for m in harness.progress(job["job_id"])]
    assert statuses[-2:] == ["uploading", "registering"]
    log = read(harness, job["log_key"]).decode()
    assert log.rstrip().endswith(error)


def test_without_a_chunk_prefix_no_chunks_are_written(harness: base.Harness) -> None:
    job = harness.start_job("sleep: 3\n")
    assert harness.result(job["job_id"])["outcome"] == "success"
    assert chunk_keys(harness, f"jobs/{job['job_id']}/log/") == []
    answer = harness.agent.answers.get(job["job_id"])
    assert isinstance(answer, BuildOutput) and answer.upload_status is None


def test_a_cancelled_job_leaves_chunks_that_make_the_whole_log(harness: base.Harness) -> None:
    job = start(harness, "sleep: 30\n")
    harness.wait_for_status(job["job_id"], "building_image")
    harness.cancel(job)
    result = harness.result(job["job_id"])
    assert result["error"]["Error"] == base.CANCELLED
    log = read(harness, job["log_key"])
    keys = chunk_keys(harness, job["log_chunk_prefix"])
    assert b"".join(read(harness, key) for key in keys) == log
    assert log.rstrip().endswith(base.CANCELLED.encode())
