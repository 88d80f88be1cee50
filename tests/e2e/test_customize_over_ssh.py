"""A customize job on the `make up` stack, as an IMS user runs one: build an image, ask for a
customize job, log in over real SSH, change a file, signal completion, find the change in the
new image while the original stays as it was."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import paramiko
import pytest
import requests

from infra.local.process import StackProcess
from tests.e2e.test_local_stack import start_job, upload_example, wait_for_job

pytestmark = pytest.mark.slow
ROOTFS = "application/vnd.cray.image.rootfs.squashfs"


@pytest.fixture(scope="module")
def ssh_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def key_record(stack: StackProcess, ssh_key: Path) -> dict[str, Any]:
    body = {"name": "customizer", "public_key": ssh_key.with_suffix(".pub").read_text().strip()}
    return dict(stack.ims("POST", "/v3/public-keys", json=body).json())


@pytest.fixture(scope="module")
def base_image(stack: StackProcess, key_record: dict[str, Any]) -> dict[str, Any]:
    job_id = start_job(stack, upload_example(stack, "minimal"), key_record, "base")
    done, _ = wait_for_job(stack, job_id, timeout=900)
    assert done["status"] == "success", (done, stack.output())
    return dict(stack.ims("GET", f"/v3/images/{done['resultant_image_id']}").json())


def rootfs_file(stack: StackProcess, image_id: str, path: str, scratch: Path) -> str | None:
    manifest = stack.ims("GET", f"/v3/images/{image_id}/manifest").json()
    rootfs = next(a for a in manifest["artifacts"] if a["type"] == ROOTFS)
    local = scratch / f"{image_id}.squashfs"
    local.write_bytes(requests.get(rootfs["download_url"], timeout=120).content)
    shown = subprocess.run(
        ["unsquashfs", "-cat", str(local), path], capture_output=True, text=True, check=False
    )
    return shown.stdout if shown.returncode == 0 else None


def wait_for_shell(stack: StackProcess, job_id: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = stack.ims("GET", f"/v3/jobs/{job_id}").json()
        if job["status"] == "waiting_on_user" and job["ssh_containers"]:
            return dict(job)
        assert job["status"] not in ("success", "error"), (job, stack.output())
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} never offered a shell\n{stack.output()}")


def run_over_ssh(connection: dict[str, Any], key: Path, command: str) -> str:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(
        connection["host"],
        port=int(connection["port"]),
        username="root",
        key_filename=str(key),
        look_for_keys=False,
        allow_agent=False,
        timeout=30,
    )
    try:
        _, stdout, stderr = client.exec_command(command, timeout=60)
        status = stdout.channel.recv_exit_status()
        output = stdout.read().decode()
        assert status == 0, (output, stderr.read().decode())
        return output
    finally:
        client.close()


@pytest.mark.parametrize(
    ("jail", "command"),
    [
        (True, "echo jailed > /etc/kiln-change && cat /etc/hostname && touch /tmp/complete"),
        (
            False,
            "echo free > /mnt/image/etc/kiln-change && cat /mnt/image/etc/hostname"
            " && touch /mnt/image/complete",
        ),
    ],
    ids=["jailed", "not-jailed"],
)
def test_customize_job_over_ssh(
    stack: StackProcess,
    ssh_key: Path,
    key_record: dict[str, Any],
    base_image: dict[str, Any],
    tmp_path: Path,
    jail: bool,
    command: str,
) -> None:
    body = {
        "job_type": "customize",
        "artifact_id": base_image["id"],
        "public_key_id": key_record["id"],
        "image_root_archive_name": f"custom-{'jail' if jail else 'free'}",
        "ssh_containers": [{"name": "customize", "jail": jail}],
    }
    created = stack.ims("POST", "/v3/jobs", json=body)
    assert created.status_code == 201, created.text
    job = wait_for_shell(stack, created.json()["id"])
    container = job["ssh_containers"][0]
    assert container["jail"] is jail and container["status"] == "active"
    connection = container["connection_info"]["customer_access"]

    assert "kiln-minimal" in run_over_ssh(connection, ssh_key, command)

    done, _ = wait_for_job(stack, job["id"], timeout=600)
    assert done["status"] == "success", (done, stack.output())
    new_id = done["resultant_image_id"]
    assert new_id and new_id != base_image["id"]
    new_image = stack.ims("GET", f"/v3/images/{new_id}").json()
    assert new_image["name"] == body["image_root_archive_name"]
    expected = "jailed\n" if jail else "free\n"
    assert rootfs_file(stack, new_id, "etc/kiln-change", tmp_path) == expected
    assert rootfs_file(stack, new_id, "tmp/complete", tmp_path) is None
    assert rootfs_file(stack, new_id, "complete", tmp_path) is None
    assert rootfs_file(stack, base_image["id"], "etc/kiln-change", tmp_path) is None
    assert stack.ims("GET", f"/v3/images/{base_image['id']}").json() == base_image


def test_wrong_key_is_refused(
    stack: StackProcess, key_record: dict[str, Any], base_image: dict[str, Any], tmp_path: Path
) -> None:
    body = {
        "job_type": "customize",
        "artifact_id": base_image["id"],
        "public_key_id": key_record["id"],
        "image_root_archive_name": "refused",
    }
    job = wait_for_shell(stack, stack.ims("POST", "/v3/jobs", json=body).json()["id"])
    connection = job["ssh_containers"][0]["connection_info"]["customer_access"]
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    with pytest.raises(paramiko.AuthenticationException):
        run_over_ssh(connection, other, "true")

    assert stack.ims("DELETE", f"/v3/jobs/{job['id']}").status_code == 204  # cancel it
    ended = stack.ims("GET", f"/v3/jobs/{job['id']}").json()
    assert ended["status"] == "error" and ended["status_reason"].startswith("cancelled")
    deadline = time.time() + 60  # the host stops the session and answers; its log says so
    while time.time() < deadline:
        log = stack.ims("GET", f"/v3/jobs/{job['id']}/log")  # what the host wrote so far
        if log.status_code == 200 and "Cancelled" in log.text:
            break
        time.sleep(1)
    else:
        raise AssertionError("the host never answered the cancelled job\n" + stack.output())
