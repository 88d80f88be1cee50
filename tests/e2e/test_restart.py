"""The `make up` stack keeps its data: stopped cleanly (as `make down` does) and started again on
the same data directory, every face's records and artifacts read back the same (an IMS build
and its image, a composer compose, a Glance image's data, a Cachito bundle, an OMPS release);
killed -9 whole (the stack, its build hosts and moto at once) in the middle of a Glance
upload and of a build, it comes back with the half-sent image never active, and the build
dispatched again from its record and built to success, no job left unfinished.

Each test runs its own stacks (not the session's): it stops and restarts them."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from builders import workdir
from infra.local import control
from infra.local.process import StackProcess
from infra.local.stack import native_arch
from tests.cachito.atomic_client import CachitoAPI
from tests.cachito.git_server import GitServer
from tests.conftest import free_port
from tests.e2e.test_local_stack import (
    public_key,
    start_job,
    upload_example,
    wait_for_job,
)
from tests.omps.operators import PACKAGE, flat_operator

pytestmark = pytest.mark.slow
MiB = 1 << 20
ORG = "restart-operators"
OCTETS = {"Content-Type": "application/octet-stream"}


def settings(**more: str) -> dict[str, str]:
    return {
        "KILN_BUILD_HOSTS": native_arch(),
        "KILN_CACHITO_ALLOW": "127.0.0.0/8",
        **more,
    }


def glance(stack: StackProcess, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"X-Auth-Token": stack.info["tokens"]["user"], **kwargs.pop("headers", {})}
    return requests.request(
        method, f"{stack.info['glance_url']}{path}", headers=headers, timeout=120, **kwargs
    )


def new_image(stack: StackProcess, name: str) -> dict[str, Any]:
    body = {"name": name, "disk_format": "raw", "container_format": "bare"}
    created = glance(stack, "POST", "/v2/images", json=body)
    assert created.status_code == 201, created.text
    return dict(created.json())


def unfinished(stack: StackProcess) -> list[str]:
    jobs = stack.ims("GET", "/v3/jobs").json()
    return [job["id"] for job in jobs if job["status"] not in ("success", "error")]


def sha256_of(url: str, **kwargs: Any) -> str:
    digest = hashlib.sha256()
    with requests.get(url, stream=True, timeout=300, **kwargs) as response:
        assert response.status_code == 200, response.text
        for chunk in response.iter_content(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def ims_state(stack: StackProcess, job_id: str) -> dict[str, Any]:
    """The job, its recipe and image records, and each artifact's sha256 as downloaded."""
    job = stack.ims("GET", f"/v3/jobs/{job_id}").json()
    image = stack.ims("GET", f"/v3/images/{job['resultant_image_id']}").json()
    manifest = stack.ims("GET", f"/v3/images/{image['id']}/manifest").json()
    downloaded = {a["type"]: sha256_of(a["download_url"]) for a in manifest["artifacts"]}
    recipe = stack.ims("GET", f"/v3/recipes/{job['artifact_id']}").json()
    return {
        "job": {k: job[k] for k in ("status", "resultant_image_id", "artifact_id", "timing")},
        "recipe": {k: recipe[k] for k in ("id", "name", "archive")},
        "image": {k: image[k] for k in ("id", "name", "link")},
        "artifacts": {a["type"]: a["sha256"] for a in manifest["artifacts"]},
        "downloaded": downloaded,
    }


def glance_state(stack: StackProcess, image_id: str) -> dict[str, Any]:
    shown = glance(stack, "GET", f"/v2/images/{image_id}").json()
    data = sha256_of(
        f"{stack.info['glance_url']}/v2/images/{image_id}/file",
        headers={"X-Auth-Token": stack.info["tokens"]["user"]},
    )
    kept = ("status", "size", "checksum", "os_hash_value", "name", "disk_format")
    return {**{k: shown.get(k) for k in kept}, "data": data}


def cachito_state(stack: StackProcess, request_id: int, scratch: Path) -> dict[str, Any]:
    api = CachitoAPI(stack.info["cachito_url"], stack.info["tokens"]["user"], backoff=0.5)
    request = api.session.get(api._url(f"requests/{request_id}"), timeout=60).json()
    bundle = api.download_sources(request_id, scratch / f"bundle-{time.time_ns()}.tar.gz")
    kept = ("state", "repo", "ref", "packages", "dependencies")
    return {
        **{k: request.get(k) for k in kept},
        "bundle": hashlib.sha256(bundle.read_bytes()).hexdigest(),
    }


def composer_state(stack: StackProcess, compose_id: str) -> dict[str, Any]:
    return {
        path: stack.composer("GET", f"/composes/{compose_id}{path}").json()
        for path in ("", "/logs", "/metadata")
    }


def failed_compose(stack: StackProcess) -> str:
    """A compose whose build fails at once (its repository does not answer): a record with
    its error, its logs and metadata, without a build's minutes."""
    request = {
        "architecture": native_arch(),
        "image_type": "guest-image",
        "repositories": [{"rhsm": False, "baseurl": "http://127.0.0.1:9/debian"}],
    }
    body = {"distribution": "debian-12", "image_requests": [request]}
    created = stack.composer("POST", "/compose", json=body)
    assert created.status_code == 201, created.text
    compose_id = str(created.json()["id"])
    deadline = time.time() + 300
    while stack.composer("GET", f"/composes/{compose_id}").json()["status"] == "pending":
        assert time.time() < deadline, "the compose never ended\n" + stack.output()
        time.sleep(1)
    return compose_id


def omps_state(stack: StackProcess) -> dict[str, Any]:
    auth = {"Authorization": stack.info["tokens"]["user"]}
    registry = stack.info["appregistry_url"]
    listed = requests.get(
        f"{registry}/api/v1/packages", params={"namespace": ORG}, headers=auth, timeout=30
    ).json()
    manifest = requests.get(
        f"{registry}/api/v1/packages/{ORG}/{PACKAGE}/1.0.0/helm", headers=auth, timeout=30
    ).json()
    digest = manifest["content"]["digest"]
    blob = sha256_of(
        f"{registry}/api/v1/packages/{ORG}/{PACKAGE}/blobs/sha256/{digest}", headers=auth
    )
    return {"listed": listed, "digest": digest, "blob": blob}


def every_face(
    stack: StackProcess, ids: dict[str, str], request_id: int, scratch: Path
) -> dict[str, Any]:
    """What each face shows of the records the test made (``ids``: per face, its record)."""
    return {
        "ims": ims_state(stack, ids["ims"]),
        "composer": composer_state(stack, ids["composer"]),
        "glance": glance_state(stack, ids["glance"]),
        "cachito": cachito_state(stack, request_id, scratch),
        "omps": omps_state(stack),
    }


@pytest.fixture
def git(tmp_path: Path) -> Iterator[GitServer]:
    with GitServer(tmp_path / "git") as server:
        yield server


def test_every_face_reads_back_after_a_clean_stop_and_start(tmp_path: Path, git: GitServer) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    ports = free_port(), free_port()
    with StackProcess(state_dir, *ports, **settings()) as stack:
        assert stack.info["data_dir"] == str(state_dir / "data")
        assert control.running_pid(state_dir) == stack.process.pid  # type: ignore[union-attr]
        job_id = start_job(stack, upload_example(stack, "minimal"), public_key(stack), "kept")
        done, _ = wait_for_job(stack, job_id, timeout=900)
        assert done["status"] == "success", (done, stack.output())

        compose_id = failed_compose(stack)
        image = new_image(stack, "kept")
        data = os.urandom(3 * MiB + 17)
        put = glance(stack, "PUT", f"/v2/images/{image['id']}/file", data=data, headers=OCTETS)
        assert put.status_code == 204, put.text

        lib, lib_ref = git.repo("lib", {"lib.txt": "from the submodule\n"})
        repo, ref = git.repo(
            "kept",
            {"main.txt": "kept across a restart\n"},
            submodules={"vendor/lib": (lib, lib_ref)},
        )
        api = CachitoAPI(stack.info["cachito_url"], stack.info["tokens"]["user"], backoff=0.5)
        request = api.request_sources(repo, ref, pkg_managers=["git-submodule"])
        api.wait_for_request(request["id"], timeout=600)

        pushed = requests.post(
            f"{stack.info['omps_url']}/v2/{ORG}/zipfile",
            headers={"Authorization": f"Bearer {stack.info['tokens']['user']}"},
            files={"file": ("manifests.zip", flat_operator())},
            timeout=60,
        )
        assert pushed.status_code == 200, pushed.text

        ids = {"ims": job_id, "composer": compose_id, "glance": image["id"]}
        before = every_face(stack, ids, request["id"], tmp_path)
        assert before["glance"]["data"] == hashlib.sha256(data).hexdigest()
        assert before["glance"]["status"] == "active"
        assert before["composer"][""]["status"] == "failure", before["composer"]
        assert control.down(state_dir) == 0  # `make down`: SIGTERM, and wait for the exit
        assert stack.process is not None and stack.process.wait(timeout=10) == 0
        assert control.running_pid(state_dir) is None
        assert not (state_dir / control.PID_FILE).exists()

    with StackProcess(state_dir, *ports, **settings()) as again:
        after = every_face(again, ids, request["id"], tmp_path)
        assert after == before
        assert unfinished(again) == []


class SlowBody:
    """``size`` bytes sent a MiB at a time, ``pause`` seconds apart; counts what went out."""

    def __init__(self, size: int, pause: float) -> None:
        self.size, self.pause, self.sent = size, pause, 0
        self.block = os.urandom(MiB)

    def __iter__(self) -> Iterator[bytes]:
        while self.sent < self.size:
            self.sent += len(self.block)
            yield self.block
            time.sleep(self.pause)


def test_a_kill_9_mid_upload_and_mid_build_loses_nothing_half_written(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    ports = free_port(), free_port()
    xname = f"local-{native_arch()}"
    with StackProcess(state_dir, *ports, own_group=True, **settings()) as stack:
        # a real Debian build, killed while its rootfs has /proc, /sys and /dev mounted in it
        job_id = start_job(stack, upload_example(stack, "minimal"), public_key(stack), "killed")
        job_dir = state_dir / "hosts" / xname / "jobs" / job_id
        image = new_image(stack, "half")
        upload = SlowBody(4096 * MiB, 0.05)  # minutes: still going when the stack is killed
        outcome: list[Any] = []

        def send() -> None:
            try:
                path = f"/v2/images/{image['id']}/file"
                outcome.append(glance(stack, "PUT", path, data=upload, headers=OCTETS))
            except requests.RequestException as exc:
                outcome.append(exc)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        deadline = time.time() + 180
        while upload.sent < 24 * MiB or not workdir.mounts_below(job_dir):
            assert sender.is_alive(), outcome
            assert time.time() < deadline, "the build never mounted anything\n" + stack.output()
            time.sleep(0.05)
        saving = glance(stack, "GET", f"/v2/images/{image['id']}").json()
        assert saving["status"] == "saving", saving
        stack.kill_hard()
        sender.join(timeout=30)
        assert outcome and isinstance(outcome[0], requests.RequestException), outcome
    assert control.running_pid(state_dir) is None  # the pid file is stale: no stack there

    with StackProcess(state_dir, *ports, **settings()) as again:
        shown = glance(again, "GET", f"/v2/images/{image['id']}")
        if shown.status_code != 404:
            assert shown.status_code == 200, shown.text
            assert shown.json()["status"] in ("queued", "saving"), shown.json()
            partial = glance(again, "GET", f"/v2/images/{image['id']}/file")
            assert partial.status_code != 200, "half an upload served as the image's data"

        done, _ = wait_for_job(again, job_id, timeout=900)
        assert done["status"] == "success", (done, again.output())
        assert workdir.mounts_below(state_dir / "hosts") == []
        log = (state_dir / "stack.log").read_text(errors="replace")
        assert f"{job_id}: re-dispatched after the stack restarted" in log
        assert unfinished(again) == []
