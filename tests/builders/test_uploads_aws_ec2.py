"""The ``aws`` upload target against moto (in-process): raw disk -> EBS snapshot -> UEFI AMI."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from builders import uploads
from builders.backends.base import DISK_QCOW2, DISK_RAW, BuildError
from builders.uploads import aws_ec2
from chalicelib.host_protocol import ERROR_LIMIT, FailureCode

REGION = "eu-north-1"
SHARED = "210987654321"
BLOCK = aws_ec2.BLOCK_SIZE
JOB_ID = "0b7cbd5e-8a31-4f55-9d7c-2a6f3e1c9d10"


class Recorder:
    """boto3 clients as the host makes them, recording the requests the target sends."""

    def __init__(self) -> None:
        self.clients = uploads.Clients()
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._hooked: set[int] = set()

    def __call__(self, service: str, region: str) -> Any:
        client = self.clients(service, region)
        if id(client) not in self._hooked:
            self._hooked.add(id(client))
            client.meta.events.register("provide-client-params.*.*", self._record)
        return client

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, dict(params)))

    def named(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]


@pytest.fixture
def recorder(aws_env: None) -> Iterator[Recorder]:
    with mock_aws():
        yield Recorder()


def sparse_disk(path: Path) -> tuple[Path, dict[int, bytes]]:
    """A 3 MiB + 1000 byte raw disk, holes apart from blocks 0, 3 and the partial tail (6)."""
    size = 3 * 1024 * 1024 + 1000
    with path.open("wb") as f:
        f.truncate(size)
        f.seek(100)
        f.write(b"boot sector")
        f.seek(3 * BLOCK + 5)
        f.write(b"\x01" * 4096)
        f.seek(size - 10)
        f.write(b"end of gpt")
    data = path.read_bytes()
    blocks = {
        i: data[i * BLOCK : (i + 1) * BLOCK].ljust(BLOCK, b"\0")
        for i in range(-(-size // BLOCK))
        if data[i * BLOCK : (i + 1) * BLOCK].strip(b"\0")
    }
    return path, blocks


def context(
    tmp_path: Path, recorder: Recorder, kind: str = DISK_RAW, **overrides: Any
) -> tuple[uploads.UploadContext, dict[int, bytes], list[str]]:
    path, blocks = sparse_disk(tmp_path / "disk.raw")
    data = path.read_bytes()
    disk = uploads.Disk(
        f"images/i-1/{path.name}", kind, path, len(data), hashlib.sha256(data).hexdigest()
    )
    statuses: list[str] = []
    fields: dict[str, Any] = {
        "job_id": JOB_ID,
        "arch": "x86_64",
        "bucket": "kiln-artifacts",
        "disks": [disk],
        "clients": recorder,
        "log": lambda line: None,
        "progress": statuses.append,
    }
    fields.update(overrides)
    return uploads.UploadContext(**fields), blocks, statuses


def aws_spec(**options: Any) -> uploads.Spec:
    return uploads.Spec(
        {"type": "aws", "options": {"region": REGION, "share_with_accounts": [SHARED], **options}}
    )


def test_raw_disk_becomes_a_shared_uefi_ami_from_its_nonzero_blocks(
    tmp_path: Path, recorder: Recorder
) -> None:
    ctx, blocks, statuses = context(tmp_path, recorder)
    status = uploads.run(aws_spec(), ctx)
    ami = status["options"]["ami"]
    assert status == {"type": "aws", "status": "success", "options": {"ami": ami, "region": REGION}}
    assert statuses == ["registering"]

    ec2, ebs = boto3.client("ec2", region_name=REGION), boto3.client("ebs", region_name=REGION)
    (image,) = ec2.describe_images(ImageIds=[ami])["Images"]
    assert image["Name"] == f"kiln-{JOB_ID}" and image["BootMode"] == "uefi"
    assert (
        boto3.client("ec2", region_name="us-east-1").describe_images(Owners=["self"])["Images"]
        == []
    )  # only in the requested region
    (registered,) = recorder.named("RegisterImage")
    snapshot_id = registered["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    assert registered["BootMode"] == "uefi" and registered["Architecture"] == "x86_64"
    assert registered["RootDeviceName"] == "/dev/xvda" and registered["EnaSupport"] is True
    assert registered["VirtualizationType"] == "hvm"
    assert registered["BlockDeviceMappings"] == [
        {
            "DeviceName": "/dev/xvda",
            "Ebs": {"SnapshotId": snapshot_id, "DeleteOnTermination": True, "VolumeType": "gp3"},
        }
    ]
    permissions = ec2.describe_image_attribute(ImageId=ami, Attribute="launchPermission")
    assert permissions["LaunchPermissions"] == [{"UserId": SHARED}]
    volume = ec2.describe_snapshot_attribute(
        SnapshotId=snapshot_id, Attribute="createVolumePermission"
    )
    assert volume["CreateVolumePermissions"] == [{"UserId": SHARED}]

    # only the blocks that are not all zeros were written, each as the disk has it
    listed = ebs.list_snapshot_blocks(SnapshotId=snapshot_id)["Blocks"]
    assert sorted(b["BlockIndex"] for b in listed) == sorted(blocks) == [0, 3, 6]
    for index, expected in blocks.items():
        got = ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=index, BlockToken="t")
        assert got["BlockData"].read() == expected
    (started,) = recorder.named("StartSnapshot")
    assert started["VolumeSize"] == 1 and started["ClientToken"].startswith(JOB_ID)
    assert {"Key": "kiln:job-id", "Value": JOB_ID} in started["Tags"]
    puts = recorder.named("PutSnapshotBlock")
    for put in puts:
        digest = hashlib.sha256(blocks[put["BlockIndex"]]).digest()
        assert put["ChecksumAlgorithm"] == "SHA256"
        assert put["Checksum"] == base64.b64encode(digest).decode()
    (completed,) = recorder.named("CompleteSnapshot")
    linear = hashlib.sha256(b"".join(hashlib.sha256(blocks[i]).digest() for i in (0, 3, 6)))
    assert completed["ChangedBlocksCount"] == 3
    assert completed["ChecksumAggregationMethod"] == "LINEAR"
    assert completed["Checksum"] == base64.b64encode(linear.digest()).decode()


def test_a_replay_gets_the_same_ami(tmp_path: Path, recorder: Recorder) -> None:
    ctx, _, statuses = context(tmp_path, recorder)
    first = uploads.run(aws_spec(), ctx)
    second = uploads.run(aws_spec(), ctx)
    assert first == second
    assert len(recorder.named("RegisterImage")) == 1
    assert len(recorder.named("StartSnapshot")) == 1
    assert statuses == ["registering"]  # the replay registers nothing


def test_a_replay_after_a_lost_registration_reuses_the_snapshot(
    tmp_path: Path, recorder: Recorder
) -> None:
    ctx, _, _ = context(tmp_path, recorder)
    first = uploads.run(aws_spec(), ctx)["options"]["ami"]
    boto3.client("ec2", region_name=REGION).deregister_image(ImageId=first)
    second = uploads.run(aws_spec(), ctx)["options"]["ami"]
    assert second != first
    assert len(recorder.named("StartSnapshot")) == 1
    snapshots = {
        r["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"] for r in recorder.named("RegisterImage")
    }
    assert len(snapshots) == 1


def test_arm_disks_register_arm64_images_named_after_the_snapshot_name(
    tmp_path: Path, recorder: Recorder
) -> None:
    ctx, _, _ = context(tmp_path, recorder, arch="aarch64")
    status = uploads.run(aws_spec(snapshot_name="my image: v1", share_with_accounts=[]), ctx)
    (registered,) = recorder.named("RegisterImage")
    assert registered["Architecture"] == "arm64"
    assert registered["Name"] == f"kiln-my image- v1-{JOB_ID}"
    assert recorder.named("ModifyImageAttribute") == []
    assert status["options"]["region"] == REGION


def test_no_raw_disk_fails_clearly(tmp_path: Path, recorder: Recorder) -> None:
    ctx, _, _ = context(tmp_path, recorder, kind=DISK_QCOW2)
    with pytest.raises(BuildError, match=rf"^upload to aws failed: .*no {DISK_RAW} disk") as failed:
        uploads.run(aws_spec(), ctx)
    assert failed.value.code is FailureCode.UPLOAD_FAILED


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({}, "region must be"),
        ({"region": "nowhere"}, "region must be"),
        ({"region": REGION, "share_with_accounts": ["12"]}, "12-digit"),
        ({"region": REGION, "share_with_accounts": "210987654321"}, "12-digit"),
    ],
)
def test_bad_options_fail_before_anything_is_built(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(BuildError, match=f"^upload to aws failed: .*{problem}") as failed:
        uploads.parse({"type": "aws", "options": options})
    assert failed.value.code is FailureCode.UPLOAD_FAILED


class FailingBlocks:
    """An EBS client whose PutSnapshotBlock is refused."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def put_snapshot_block(self, **_: Any) -> None:
        error = {"Error": {"Code": "AccessDeniedException", "Message": "no " * 200}}
        raise ClientError(error, "PutSnapshotBlock")  # type: ignore[arg-type]


def test_a_refused_block_fails_the_upload_with_a_short_reason(
    tmp_path: Path, recorder: Recorder
) -> None:
    def clients(service: str, region: str) -> Any:
        client = recorder(service, region)
        return FailingBlocks(client) if service == "ebs" else client

    ctx, _, statuses = context(tmp_path, recorder, clients=clients)
    with pytest.raises(BuildError) as failed:
        uploads.run(aws_spec(), ctx)
    message = str(failed.value)
    assert message.startswith("upload to aws failed: An error occurred (AccessDeniedException)")
    assert failed.value.code is FailureCode.UPLOAD_FAILED
    assert len("UploadFailed: " + message) == ERROR_LIMIT and message.endswith("...")
    assert statuses == [] and recorder.named("RegisterImage") == []


class Registration:
    """An EC2 client whose RegisterImage is refused (``refuse``), or whose AMIs all show
    ``state`` once registered."""

    def __init__(self, real: Any, refuse: str = "", state: str = "") -> None:
        self._real, self._refuse, self._state = real, refuse, state

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def register_image(self, **params: Any) -> Any:
        if self._refuse:
            error: Any = {"Error": {"Code": self._refuse, "Message": "no " * 200}}
            raise ClientError(error, "RegisterImage")
        return self._real.register_image(**params)

    def describe_images(self, **params: Any) -> Any:
        found = self._real.describe_images(**params)
        if self._state and "ImageIds" in params:
            reason = {"Code": "Client.InvalidSnapshot", "Message": "the snapshot is not bootable"}
            for image in found["Images"]:
                image.update(State=self._state, StateReason=reason)
        return found


def ec2_as(recorder: Recorder, **behaviour: str) -> Any:
    def clients(service: str, region: str) -> Any:
        client = recorder(service, region)
        return Registration(client, **behaviour) if service == "ec2" else client

    return clients


def test_a_refused_registration_fails_with_register_failed(
    tmp_path: Path, recorder: Recorder
) -> None:
    ctx, _, statuses = context(tmp_path, recorder, clients=ec2_as(recorder, refuse="Unsupported"))
    with pytest.raises(BuildError) as failed:
        uploads.run(aws_spec(), ctx)
    message = str(failed.value)
    assert failed.value.code is FailureCode.REGISTER_FAILED
    assert message.startswith(f"upload to aws failed: AMI kiln-{JOB_ID} could not be registered")
    assert "(Unsupported)" in message and message.endswith("...")
    assert len("RegisterFailed: " + message) == ERROR_LIMIT  # the whole error fits SendTaskFailure
    assert statuses == ["registering"] and len(recorder.named("CompleteSnapshot")) == 1


def test_an_ami_that_ends_failed_fails_with_register_failed(
    tmp_path: Path, recorder: Recorder
) -> None:
    ctx, _, statuses = context(tmp_path, recorder, clients=ec2_as(recorder, state="failed"))
    with pytest.raises(
        BuildError, match=r"^upload to aws failed: AMI ami-\w+ is failed: the "
    ) as failed:
        uploads.run(aws_spec(), ctx)
    assert failed.value.code is FailureCode.REGISTER_FAILED
    assert statuses == ["registering"] and recorder.named("ModifyImageAttribute") == []


def test_an_ami_never_available_fails_with_register_failed(
    tmp_path: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aws_ec2, "IMAGE_WAIT_SECONDS", 0.0)
    ctx, _, _ = context(tmp_path, recorder, clients=ec2_as(recorder, state="pending"))
    with pytest.raises(BuildError, match=r"gave up waiting: AMI ami-\w+ still pending") as failed:
        uploads.run(aws_spec(), ctx)
    assert failed.value.code is FailureCode.REGISTER_FAILED


class Interrupted(Exception):
    pass


def test_an_interrupted_upload_stops_and_is_not_reported_as_a_failure(
    tmp_path: Path, recorder: Recorder
) -> None:
    def interrupted() -> None:
        raise Interrupted()

    ctx, _, _ = context(tmp_path, recorder, check_interrupted=interrupted)
    with pytest.raises(Interrupted):
        uploads.run(aws_spec(), ctx)
    assert recorder.named("PutSnapshotBlock") == [] and recorder.named("RegisterImage") == []
