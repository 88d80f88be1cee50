"""The composer face on the `make up` stack, as a composer client uses it: a two-image compose
(a guest-image qcow2 to S3 and an AMI) with a package and a user, logs polled while it builds,
the qcow2 booted, the AMI found in its region."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from builders.backends.debian_mirror import host_apt_mirror
from infra.local.process import StackProcess
from tests.qemu_boot import boot_to_login

pytestmark = pytest.mark.slow
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKilnTestKeyOnlyForTestsAAAAAAAAAAAAAAAAAAAA e2e@kiln"
SHARE_WITH = "123456789012"


def _repositories() -> list[dict[str, Any]]:
    """The package mirror this machine's build host uses, as a composer repository."""
    mirror = os.environ.get("KILN_DEBIAN_MIRROR") or host_apt_mirror(Path("/etc/apt"))
    return [{"rhsm": False, "baseurl": mirror}] if mirror else []


def test_two_image_compose_builds_uploads_and_boots(stack: StackProcess, tmp_path: Path) -> None:
    repositories = _repositories()
    body = {
        "distribution": "debian-12",
        "image_requests": [
            {"architecture": "x86_64", "image_type": "guest-image", "repositories": repositories},
            {
                "architecture": "x86_64",
                "image_type": "aws",
                "repositories": repositories,
                "upload_options": {"region": "eu-west-1", "share_with_accounts": [SHARE_WITH]},
            },
        ],
        "customizations": {
            "packages": ["less"],
            "users": [{"name": "alice", "groups": ["wheel"], "key": KEY}],
        },
    }
    created = stack.composer("POST", "/compose", json=body)
    assert created.status_code == 201, created.text
    compose_id = created.json()["id"]

    seen: list[list[str]] = []
    live_log_seen = False
    deadline = time.time() + 1500
    while time.time() < deadline:
        status = stack.composer("GET", f"/composes/{compose_id}").json()
        states = [image["status"] for image in status["image_statuses"]]
        if not seen or seen[-1] != states:
            seen.append(states)
        if status["status"] != "pending":
            break
        logs = stack.composer("GET", f"/composes/{compose_id}/logs").json()
        for build in logs["image_builds"]:
            live_log_seen = live_log_seen or (build["streaming"] and "mmdebstrap" in build["log"])
        time.sleep(2)
    else:
        raise AssertionError(f"compose still pending after 25 min: {seen}\n{stack.output()}")
    assert status["status"] == "success", f"{json.dumps(status, indent=1)}\n{stack.output()}"
    assert live_log_seen, "no log text was readable while the build ran"
    flat = {state for states in seen for state in states}
    assert {"building", "uploading", "success"} <= flat, seen

    guest, ami = status["image_statuses"]
    qcow2 = tmp_path / "disk.qcow2"
    qcow2.write_bytes(requests.get(guest["upload_status"]["options"]["url"], timeout=120).content)
    assert qcow2.read_bytes()[:4] == b"QFI\xfb"

    options = ami["upload_status"]["options"]
    assert options["region"] == "eu-west-1" and options["ami"].startswith("ami-")
    ec2 = boto3.client(
        "ec2",
        region_name="eu-west-1",
        endpoint_url=stack.info["aws_endpoint_url"],
        aws_access_key_id="kiln-local",  # the stack's moto accepts these
        aws_secret_access_key="kiln-local",
    )
    (registered,) = ec2.describe_images(ImageIds=[options["ami"]])["Images"]
    assert registered["BootMode"] == "uefi"
    permissions = ec2.describe_image_attribute(
        ImageId=options["ami"], Attribute="launchPermission"
    )["LaunchPermissions"]
    assert {"UserId": SHARE_WITH} in permissions

    metadata = stack.composer("GET", f"/composes/{compose_id}/metadata").json()
    names = {package["name"] for package in metadata["packages"]}
    assert {"less", "openssh-server", "base-files"} <= names
    assert all(p["type"] == "deb" and p["sigmd5"] for p in metadata["packages"])
    manifests = stack.composer("GET", f"/composes/{compose_id}/manifests").json()["manifests"]
    assert [m["format"] for m in manifests] == ["kiln-build-plan/1"] * 2
    assert any(p["name"] == "less" and p["sha256"] for p in manifests[0]["packages"])
    final = stack.composer("GET", f"/composes/{compose_id}/logs").json()["image_builds"]
    assert not any(build["streaming"] for build in final)

    # one registry: both images are in Glance too, hashed where they lie; the qcow2 downloads
    glance = {"X-Auth-Token": stack.info["tokens"]["user"]}
    deadline, registered = time.time() + 300, []
    while time.time() < deadline:
        listed = requests.get(
            f"{stack.info['glance_url']}/v2/images", headers=glance, timeout=30
        ).json()["images"]
        registered = [i for i in listed if i.get("kiln_compose_id") == compose_id]
        if len(registered) == 2 and all(i["status"] == "active" for i in registered):
            break
        time.sleep(3)
    formats = sorted((i["disk_format"], i["architecture"]) for i in registered)
    assert formats == [("qcow2", "x86_64"), ("raw", "x86_64")], registered
    glance_qcow2 = next(i for i in registered if i["disk_format"] == "qcow2")
    assert glance_qcow2["size"] == qcow2.stat().st_size
    assert glance_qcow2["checksum"] == hashlib.md5(qcow2.read_bytes()).hexdigest()

    console = boot_to_login(qcow2, tmp_path)
    assert "login:" in console
