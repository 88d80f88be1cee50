"""Customize jobs and debug shells end to end on one host: the real state machine on moto
server, a real sshd, logged into with paramiko, real unsquashfs/mksquashfs."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from builders import customize
from builders.backends.base import INITRD, KERNEL, ROOTFS_SQUASHFS, Artifact
from builders.report import Reporter
from chalicelib.host_protocol import JobMessage
from tests.builders.test_agent import CANCELLED, CANCELLED_ANSWER, Harness
from tests.builders.test_ssh_session import connect, make_key, run, shell_root
from tests.conftest import BUCKET, MotoStack

pytestmark = pytest.mark.skipif(
    customize.unavailable_reason() is not None,
    reason=f"no customize jobs here: {customize.unavailable_reason()}",
)


DPKG_STATUS = """\
Package: base-files
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy.

Package: removed-one
Status: install ok half-installed
Architecture: amd64
Version: 1.0
"""


@pytest.fixture
def harness(moto_server: MotoStack, tmp_path: Path) -> Any:
    with Harness(moto_server, tmp_path / "host") as h:
        yield h


@pytest.fixture
def key(tmp_path: Path) -> Path:
    return make_key(tmp_path)


def publish_source_image(harness: Harness, folder: Path, jail: bool) -> dict[str, Any]:
    """A source image as a create job leaves it: squashfs, kernel, initrd and manifest.json,
    written by the same Reporter a build host uses."""
    root = shell_root(folder / "root") if jail else folder / "root"
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "motd").write_text("original\n")
    (root / "etc" / "os-release").write_text('ID=debian\nVERSION_CODENAME="bookworm"\n')
    (root / "var" / "lib" / "dpkg").mkdir(parents=True)
    (root / "var" / "lib" / "dpkg" / "status").write_text(DPKG_STATUS)
    out = folder / "out"
    out.mkdir()
    squashfs = out / "source.squashfs"
    subprocess.run(
        ["mksquashfs", str(root), str(squashfs), "-quiet", "-no-progress", "-comp", "gzip"],
        check=True,
    )
    (out / "vmlinuz").write_bytes(b"kernel bytes")
    (out / "initrd").write_bytes(b"initrd bytes")
    image_id, job_id = str(uuid.uuid4()), str(uuid.uuid4())
    reporter = Reporter(harness.sqs, harness.s3, harness.sfn, harness.events, "source-host")
    job = JobMessage(
        job_id=job_id,
        kind="ims-create",
        job_type="create",
        tenant="demo",
        arch="x86_64",
        recipe_type="kiln-noop",
        bucket=BUCKET,
        image_id=image_id,
        artifact_prefix=f"images/{image_id}/",
        log_key=f"jobs/{job_id}/build.log",
        log_chunk_prefix="",
        cancel_key=f"control/jobs/{job_id}/cancel",
        source_date_epoch=1700000000,
    )
    artifacts = [
        Artifact(squashfs, ROOTFS_SQUASHFS),
        Artifact(out / "vmlinuz", KERNEL),
        Artifact(out / "initrd", INITRD),
    ]
    manifest, published = reporter.publish_image(job, artifacts, folder)
    listed = [{"type": a.type, "key": a.key, "sha256": a.sha256} for a in published]
    return {"image_id": image_id, "manifest_key": manifest["key"], "artifacts": listed}


def objects(harness: Harness, prefix: str) -> dict[str, str]:
    listed = harness.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {item["Key"]: item["ETag"] for item in listed}


def customize_job(
    harness: Harness, source: dict[str, Any], key: Path, jail: bool = False, **extra: Any
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "job_type": "customize",
        "recipe_type": "",
        "recipe": {},
        "image_root_archive_name": "custom",
        "kernel_file_name": "vmlinuz",
        "initrd_file_name": "initrd",
        "public_key": key.with_suffix(".pub").read_text().strip(),
        "ssh_containers": [{"name": "customize", "jail": jail}],
        "source_image": source,
        "user_wait_seconds": 40,
        "enable_debug": False,
        **extra,
    }
    job = harness.start_job("", start=False, **fields)
    harness.start(job)
    return job


def squashfs_file(harness: Harness, key: str, path: str, folder: Path) -> str:
    local = folder / "downloaded.squashfs"
    harness.s3.download_file(BUCKET, key, str(local))
    done = subprocess.run(
        ["unsquashfs", "-cat", str(local), path], capture_output=True, text=True, check=True
    )
    return done.stdout


def listing(squashfs: Path) -> str:
    return subprocess.run(
        ["unsquashfs", "-l", str(squashfs)], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.parametrize("jail", [False, True], ids=["host-shell", "jailed"])
def test_customize_publishes_the_changed_image_and_leaves_the_source_alone(
    harness: Harness, key: Path, tmp_path: Path, jail: bool
) -> None:
    source = publish_source_image(harness, tmp_path / "source", jail)
    source_prefix = f"images/{source['image_id']}/"
    before = objects(harness, source_prefix)
    job = customize_job(harness, source, key, jail=jail)

    waiting = harness.wait_for_status(job["job_id"], "waiting_on_user")
    (container,) = waiting["ssh_containers"]
    assert container["name"] == "customize" and container["jail"] is jail
    assert container["status"] == "active"
    info = container["connection_info"]
    assert info["customer_access"] == info["cluster.local"]
    assert info["customer_access"]["host"] == "127.0.0.1"
    client = connect(info, key)
    if jail:  # the shell runs inside the image: shell builtins only
        command = "echo customized > /etc/motd && : > /tmp/complete"
    else:
        command = "echo customized > /mnt/image/etc/motd && touch /mnt/image/complete"
    assert run(client, command)[0] == 0
    client.close()

    result = harness.result(job["job_id"], timeout=40)
    assert result["outcome"] == "success", result
    output = result["output"]
    prefix = job["artifact_prefix"]
    assert {a["key"] for a in output["artifacts"]} == {
        f"{prefix}custom.squashfs",
        f"{prefix}vmlinuz",
        f"{prefix}initrd",
        f"{prefix}sbom.cdx.json",
        f"{prefix}sbom.spdx.json",
    }
    cdx = json.loads(
        harness.s3.get_object(Bucket=BUCKET, Key=f"{prefix}sbom.cdx.json")["Body"].read()
    )
    (package,) = [c for c in cdx["components"] if c["type"] == "library"]  # not half-installed
    assert package["version"] == "12.4+deb12u5"
    assert package["purl"] == "pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64&distro=debian-12"
    assert output["manifest"]["key"] == f"{prefix}manifest.json"
    motd = squashfs_file(harness, f"{prefix}custom.squashfs", "etc/motd", tmp_path)
    assert motd == "customized\n"
    local = tmp_path / "downloaded.squashfs"
    assert "complete" not in listing(local).split("squashfs-root/", 1)[-1]
    kernel = harness.s3.get_object(Bucket=BUCKET, Key=f"{prefix}vmlinuz")["Body"].read()
    assert kernel == b"kernel bytes"
    manifest = json.loads(
        harness.s3.get_object(Bucket=BUCKET, Key=f"{prefix}manifest.json")["Body"].read()
    )
    rootfs = next(a for a in manifest["artifacts"] if a["type"] == ROOTFS_SQUASHFS)
    assert rootfs["sha256"] == hashlib.sha256(local.read_bytes()).hexdigest()

    assert objects(harness, source_prefix) == before  # the source image is untouched
    original = squashfs_file(harness, f"{source_prefix}source.squashfs", "etc/motd", tmp_path)
    assert original == "original\n"
    statuses = [m["status"] for m in harness.progress(job["job_id"])]
    assert statuses == ["fetching_image", "waiting_on_user", "building_image"]
    building = harness.progress(job["job_id"])[-1]
    assert building["ssh_containers"][0]["status"] == "complete"
    log = harness.s3.get_object(Bucket=BUCKET, Key=output["log_key"])["Body"].read().decode()
    assert "Accepted publickey for root" in log
    assert_port_closed(info["customer_access"]["port"])


def assert_port_closed(port: int) -> None:
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_cancel_while_waiting_on_the_user(harness: Harness, key: Path, tmp_path: Path) -> None:
    source = publish_source_image(harness, tmp_path / "source", jail=False)
    job = customize_job(harness, source, key)
    waiting = harness.wait_for_status(job["job_id"], "waiting_on_user")
    harness.cancel(job)
    result = harness.result(job["job_id"])
    assert result["outcome"] == "failure" and result["error"]["Error"] == CANCELLED
    assert harness.agent.answers.get(job["job_id"]) == CANCELLED_ANSWER
    assert objects(harness, job["artifact_prefix"]) == {}
    assert_port_closed(waiting["ssh_containers"][0]["connection_info"]["cluster.local"]["port"])


def test_no_completion_signal_fails_the_job(harness: Harness, key: Path, tmp_path: Path) -> None:
    source = publish_source_image(harness, tmp_path / "source", jail=False)
    job = customize_job(harness, source, key, user_wait_seconds=2)
    result = harness.result(job["job_id"])
    assert result["error"]["Error"].startswith("BuildFailed: no completion signal within 2 s")


def test_a_changed_source_image_is_refused(harness: Harness, key: Path, tmp_path: Path) -> None:
    source = publish_source_image(harness, tmp_path / "source", jail=False)
    key_of_rootfs = f"images/{source['image_id']}/source.squashfs"
    harness.s3.put_object(Bucket=BUCKET, Key=key_of_rootfs, Body=b"not the image")
    job = customize_job(harness, source, key)
    error = harness.result(job["job_id"])["error"]["Error"]
    assert error.startswith("BuildFailed: ") and "does not match its manifest" in error


def test_enable_debug_holds_a_shell_on_the_failed_build_then_answers_the_failure(
    harness: Harness, key: Path
) -> None:
    job = harness.start_job(
        'fail: "package foo does not exist"\n',
        enable_debug=True,
        public_key=key.with_suffix(".pub").read_text().strip(),
        ssh_containers=[{"name": "debug", "jail": False}],
        user_wait_seconds=40,
    )
    waiting = harness.wait_for_status(job["job_id"], "waiting_on_user")
    (container,) = waiting["ssh_containers"]
    assert container["name"] == "debug" and container["status"] == "active"
    client = connect(container["connection_info"], key)
    status, out = run(client, "cat /mnt/image/etc/kiln-noop && touch /mnt/image/complete")
    assert status == 0 and job["job_id"] in out
    client.close()
    result = harness.result(job["job_id"])
    assert result["error"]["Error"] == "BuildFailed: package foo does not exist"
    statuses = [m["status"] for m in harness.progress(job["job_id"])]
    assert statuses == ["fetching_recipe", "waiting_for_repos", "building_image", "waiting_on_user"]
