"""``aws``: the raw disk becomes an EBS snapshot (EBS direct APIs, no S3 import, no helper
instance), then a UEFI AMI, shared with the accounts the request names.

options: ``{"region", "share_with_accounts": [12-digit ids], "snapshot_name": optional}``.
upload_status options: ``{"ami": <image id>, "region": <region>}``.

Idempotent per job (a Step Functions retry may run the job again, on any host): the AMI is
named for the job (``kiln-[<snapshot_name>-]<job id>``) and reused if it exists; a completed
snapshot tagged with the job and the disk's sha256 is reused; StartSnapshot's ClientToken is
the job id and the disk's digest, so a replay of a half-written upload gets the same snapshot.

Failures: BuildError with UPLOAD_FAILED (the snapshot; builders.uploads.run also turns a
botocore error into that), or REGISTER_FAILED once the snapshot is complete and the AMI cannot
be registered (RegisterImage refused, the AMI ending in a failed state, or never available).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from builders.backends.base import DISK_RAW, BuildError
from chalicelib.host_protocol import FailureCode

if TYPE_CHECKING:
    from builders.uploads import Disk, UploadContext

BLOCK_SIZE = 512 * 1024  # the EBS direct APIs' only block size
GIB = 1 << 30
WORKERS = 12  # PutSnapshotBlock calls in parallel
IN_FLIGHT = 2 * WORKERS  # blocks read ahead (memory: IN_FLIGHT x 512 KiB)
POLL_SECONDS = 5.0
SNAPSHOT_WAIT_SECONDS = 3600.0
IMAGE_WAIT_SECONDS = 1800.0
ARCHITECTURES = {"x86_64": "x86_64", "aarch64": "arm64"}
ROOT_DEVICE = "/dev/xvda"
JOB_TAG, DIGEST_TAG = "kiln:job-id", "kiln:disk-sha256"
_BAD_IMAGE_STATES = ("failed", "error", "invalid", "deregistered")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ACCOUNT = re.compile(r"^\d{12}$")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9()\[\] ./'@_-]+")
UPLOAD_FAILED, REGISTER_FAILED = FailureCode.UPLOAD_FAILED, FailureCode.REGISTER_FAILED


def check(options: dict[str, Any]) -> None:
    region = options.get("region")
    if not isinstance(region, str) or not _REGION.match(region):
        raise BuildError(f"region must be an AWS region such as us-east-1, not {region!r}")
    accounts = options.get("share_with_accounts") or []
    if not isinstance(accounts, list) or not all(
        isinstance(a, str) and _ACCOUNT.match(a) for a in accounts
    ):
        raise BuildError("share_with_accounts must be a list of 12-digit AWS account ids")
    name = options.get("snapshot_name")
    if name is not None and not isinstance(name, str):
        raise BuildError("snapshot_name must be a string")


def image_name(job_id: str, snapshot_name: str | None) -> str:
    """The AMI's name: unique per job (and per account and region, as AWS requires)."""
    label = _NAME_UNSAFE.sub("-", snapshot_name or "").strip(" -")[:80]
    return f"kiln-{label}-{job_id}" if label else f"kiln-{job_id}"


def upload(ctx: UploadContext, options: dict[str, Any]) -> dict[str, Any]:
    region: str = options["region"]
    accounts: list[str] = list(options.get("share_with_accounts") or [])
    architecture = ARCHITECTURES.get(ctx.arch)
    if architecture is None:
        raise BuildError(f"no AMI architecture for {ctx.arch}")
    ec2 = ctx.clients("ec2", region)
    name = image_name(ctx.job_id, options.get("snapshot_name"))
    image = _find_image(ec2, name)
    if image is not None:
        ctx.log(f"I: kiln: aws: {name} is already registered as {image['ImageId']}: reusing it")
        image_id = image["ImageId"]
        snapshots = _image_snapshots(image)
    else:
        disk = ctx.disk(DISK_RAW)
        tags = [
            {"Key": JOB_TAG, "Value": ctx.job_id},
            {"Key": DIGEST_TAG, "Value": disk.sha256},
            {"Key": "Name", "Value": options.get("snapshot_name") or name},
        ]
        snapshot_id = _find_snapshot(ec2, ctx.job_id, disk.sha256)
        if snapshot_id is not None:
            ctx.log(f"I: kiln: aws: {snapshot_id} already holds this disk: reusing it")
        else:
            snapshot_id = write_snapshot(ctx, ctx.clients("ebs", region), disk, tags)
        _wait_snapshot(ctx, ec2, snapshot_id)
        ctx.progress("registering")
        image_id = _register(ec2, name, architecture, snapshot_id, tags, ctx)
        snapshots = [snapshot_id]
    _wait_image(ctx, ec2, image_id)
    if accounts:
        ec2.modify_image_attribute(
            ImageId=image_id, LaunchPermission={"Add": [{"UserId": a} for a in accounts]}
        )
        for snapshot_id in snapshots:
            ec2.modify_snapshot_attribute(
                SnapshotId=snapshot_id,
                Attribute="createVolumePermission",
                OperationType="add",
                UserIds=accounts,
            )
        ctx.log(f"I: kiln: aws: {image_id} shared with {', '.join(accounts)}")
    ctx.log(f"I: kiln: aws: AMI {image_id} ({name}) in {region}")
    return {"ami": image_id, "region": region}


# -- the snapshot (EBS direct APIs) ----------------------------------------------------------
def write_snapshot(ctx: UploadContext, ebs: Any, disk: Disk, tags: list[dict[str, str]]) -> str:
    """A completed snapshot holding ``disk``: every 512 KiB block that is not all zeros."""
    started = ebs.start_snapshot(
        VolumeSize=max(1, -(-disk.size // GIB)),
        Description=f"kiln job {ctx.job_id}: {disk.key}"[:255],
        Tags=tags,
        ClientToken=f"{ctx.job_id}-{disk.sha256[:16]}",
    )
    snapshot_id: str = started["SnapshotId"]
    status = started.get("Status")
    if status == "completed":  # a replay: the earlier attempt finished it
        return snapshot_id
    if status == "error":
        raise BuildError(f"snapshot {snapshot_id} of an earlier attempt is in state error")
    ctx.log(f"I: kiln: aws: writing {disk.key} ({disk.size} bytes) to {snapshot_id}")
    digests = _put_blocks(ctx, ebs, snapshot_id, disk)
    request: dict[str, Any] = {"SnapshotId": snapshot_id, "ChangedBlocksCount": len(digests)}
    if digests:  # LINEAR: SHA256 over the blocks' SHA256 digests in block index order
        linear = hashlib.sha256(b"".join(digests[i] for i in sorted(digests))).digest()
        request.update(
            Checksum=base64.b64encode(linear).decode(),
            ChecksumAlgorithm="SHA256",
            ChecksumAggregationMethod="LINEAR",
        )
    if ebs.complete_snapshot(**request).get("Status") == "error":
        raise BuildError(f"EBS could not complete snapshot {snapshot_id}")
    total = -(-disk.size // BLOCK_SIZE)
    ctx.log(f"I: kiln: aws: {snapshot_id}: {len(digests)} of {total} blocks written")
    return snapshot_id


def _put_blocks(ctx: UploadContext, ebs: Any, snapshot_id: str, disk: Disk) -> dict[int, bytes]:
    """PutSnapshotBlock for each non-zero block, WORKERS at a time; index -> SHA256 digest."""
    zero = bytes(BLOCK_SIZE)
    digests: dict[int, bytes] = {}
    pending: set[Future[tuple[int, bytes]]] = set()
    pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="kiln-ebs")

    def settle(futures: set[Future[tuple[int, bytes]]]) -> None:
        for future in futures:
            index, digest = future.result()
            digests[index] = digest

    try:
        with disk.path.open("rb") as source:
            index = 0
            while block := source.read(BLOCK_SIZE):
                ctx.check_interrupted()
                block = block.ljust(BLOCK_SIZE, b"\0")  # the last block is padded
                if block != zero:
                    pending.add(pool.submit(_put_block, ebs, snapshot_id, index, block))
                index += 1
                if len(pending) >= IN_FLIGHT:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    settle(done)
        done, pending = wait(pending)
        settle(done)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return digests


def _put_block(ebs: Any, snapshot_id: str, index: int, block: bytes) -> tuple[int, bytes]:
    digest = hashlib.sha256(block).digest()
    ebs.put_snapshot_block(
        SnapshotId=snapshot_id,
        BlockIndex=index,
        BlockData=block,
        DataLength=len(block),
        Checksum=base64.b64encode(digest).decode(),
        ChecksumAlgorithm="SHA256",
    )
    return index, digest


def _find_snapshot(ec2: Any, job_id: str, sha256: str) -> str | None:
    """A completed snapshot an earlier attempt of this job made of the same disk."""
    found = ec2.describe_snapshots(
        OwnerIds=["self"],
        Filters=[
            {"Name": f"tag:{JOB_TAG}", "Values": [job_id]},
            {"Name": f"tag:{DIGEST_TAG}", "Values": [sha256]},
            {"Name": "status", "Values": ["completed"]},
        ],
    )["Snapshots"]
    return str(found[0]["SnapshotId"]) if found else None


def _wait_snapshot(ctx: UploadContext, ec2: Any, snapshot_id: str) -> None:
    deadline = time.monotonic() + SNAPSHOT_WAIT_SECONDS
    while True:
        (snapshot,) = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
        state = snapshot.get("State")
        if state == "completed":
            return
        if state == "error":
            reason = snapshot.get("StateMessage") or "no reason given"
            raise BuildError(f"snapshot {snapshot_id} failed: {reason}", code=UPLOAD_FAILED)
        _pause(ctx, deadline, f"snapshot {snapshot_id} still {state}", UPLOAD_FAILED)


# -- the AMI -----------------------------------------------------------------------------------
def _find_image(ec2: Any, name: str) -> dict[str, Any] | None:
    """This job's AMI, if an earlier attempt registered it (one that failed is removed)."""
    images = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [name]}])
    for image in images["Images"]:
        if image.get("State") in _BAD_IMAGE_STATES:
            ec2.deregister_image(ImageId=image["ImageId"])
            continue
        return dict(image)
    return None


def _image_snapshots(image: dict[str, Any]) -> list[str]:
    mappings = image.get("BlockDeviceMappings") or []
    return [m["Ebs"]["SnapshotId"] for m in mappings if (m.get("Ebs") or {}).get("SnapshotId")]


def _register(
    ec2: Any,
    name: str,
    architecture: str,
    snapshot_id: str,
    tags: list[dict[str, str]],
    ctx: UploadContext,
) -> str:
    """The AMI's id; BuildError (REGISTER_FAILED) when EC2 refuses to register it."""
    try:
        registered = ec2.register_image(
            Name=name,
            Description=f"kiln job {ctx.job_id}",
            Architecture=architecture,
            RootDeviceName=ROOT_DEVICE,
            BlockDeviceMappings=[
                {
                    "DeviceName": ROOT_DEVICE,
                    "Ebs": {
                        "SnapshotId": snapshot_id,
                        "DeleteOnTermination": True,
                        "VolumeType": "gp3",
                    },
                }
            ],
            VirtualizationType="hvm",
            EnaSupport=True,
            BootMode="uefi",
            TagSpecifications=[{"ResourceType": "image", "Tags": tags}],
        )
    except ClientError as exc:  # another attempt of this job registered it meanwhile?
        duplicate = exc.response.get("Error", {}).get("Code") == "InvalidAMIName.Duplicate"
        image = _find_image(ec2, name) if duplicate else None
        if image is None:
            raise BuildError(
                f"AMI {name} could not be registered from {snapshot_id}: {exc}",
                code=REGISTER_FAILED,
            ) from exc
        return str(image["ImageId"])
    except BotoCoreError as exc:
        raise BuildError(
            f"AMI {name} could not be registered: {exc}", code=REGISTER_FAILED
        ) from exc
    ctx.log(f"I: kiln: aws: registered {registered['ImageId']} from {snapshot_id}")
    return str(registered["ImageId"])


def _wait_image(ctx: UploadContext, ec2: Any, image_id: str) -> None:
    deadline = time.monotonic() + IMAGE_WAIT_SECONDS
    while True:
        try:
            (image,) = ec2.describe_images(ImageIds=[image_id])["Images"]
        except (BotoCoreError, ClientError, ValueError) as exc:
            raise BuildError(
                f"AMI {image_id} could not be looked up: {exc}", code=REGISTER_FAILED
            ) from exc
        state = image.get("State")
        if state == "available":
            return
        if state in _BAD_IMAGE_STATES:
            reason = (image.get("StateReason") or {}).get("Message") or "no reason given"
            raise BuildError(f"AMI {image_id} is {state}: {reason}", code=REGISTER_FAILED)
        _pause(ctx, deadline, f"AMI {image_id} still {state}", REGISTER_FAILED)


def _pause(ctx: UploadContext, deadline: float, waiting: str, code: FailureCode) -> None:
    ctx.check_interrupted()
    if time.monotonic() >= deadline:
        raise BuildError(f"gave up waiting: {waiting}", code=code)
    time.sleep(POLL_SECONDS)
