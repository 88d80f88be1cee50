"""koji-osbuild's path through the `make up` stack, end to end: the service account's token from
the stack's OAuth2 endpoint, a compose shaped as the plugin sends it (with ``koji``), a real
Debian image built by the stack's build host, then the host's import into the Koji hub stand-in
(the stack runs with ``KILN_KOJI_HUBS`` naming it; tests/e2e/conftest.py); the logs and manifests
the plugin attaches and the build id it tags."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from builders.backends.debian_mirror import host_apt_mirror
from builders.host_config import native_arch
from infra.local.process import StackProcess
from tests.composer.composer_client import ComposerClient
from tests.koji_cg_hub import COMPLETE, KojiCGHub

pytestmark = pytest.mark.slow
NVR = ("kiln-e2e-cloud", "12", "1")


def _repositories() -> list[dict[str, Any]]:
    """The package mirror this machine's build host uses, as koji-osbuild passes a repo."""
    mirror = os.environ.get("KILN_DEBIAN_MIRROR") or host_apt_mirror(Path("/etc/apt"))
    return [{"baseurl": mirror, "rhsm": False}] if mirror else []


def test_a_koji_osbuild_compose_is_built_and_imported_into_koji(
    stack: StackProcess, koji_hub: KojiCGHub
) -> None:
    account = stack.info["service_account"]
    client = ComposerClient(
        stack.info["api_url"],
        account["client_id"],
        account["client_secret"],
        stack.info["token_url"],
    )
    arch = native_arch()
    request = {
        "distribution": "debian-12",
        "koji": {
            "name": NVR[0],
            "version": NVR[1],
            "release": NVR[2],
            "server": koji_hub.hub_url,
            "task_id": 4242,
        },
        "image_requests": [
            {"architecture": arch, "image_type": "guest-image", "repositories": _repositories()}
        ],
    }
    created = client.request("POST", "compose", request)
    assert created.status_code == 201, created.text
    compose_id = created.json()["id"]

    deadline = time.time() + 1500
    while time.time() < deadline:
        status = client.request("GET", f"composes/{compose_id}").json()
        if status["status"].lower() != "pending":
            break
        time.sleep(3)
    else:
        raise AssertionError(f"compose still pending after 25 min\n{stack.output()}")
    logs = client.request("GET", f"composes/{compose_id}/logs").json()
    assert status["status"] == "success", (
        f"{json.dumps(status, indent=1)}\n{json.dumps(logs.get('koji'))}\n{stack.output()}"
    )
    build_id = status["koji_status"]["build_id"]
    assert koji_hub.builds[build_id]["state"] == COMPLETE
    assert logs["koji"] == {"init": {"build_id": build_id}, "import": {"build_id": build_id}}
    assert "mmdebstrap" in logs["image_builds"][0]["log"]

    (imported,) = [i for i in koji_hub.imports if i["build_id"] == build_id]
    stem = f"{'-'.join(NVR)}.{arch}.guest-image"
    files = imported["files"]
    assert sorted(files) == sorted(f"{stem}.{s}" for s in ("qcow2", "manifest.json", "log"))
    assert files[f"{stem}.qcow2"][:4] == b"QFI\xfb"
    manifests = client.request("GET", f"composes/{compose_id}/manifests").json()["manifests"]
    assert json.loads(files[f"{stem}.manifest.json"]) == manifests[0]
    assert b"mmdebstrap" in files[f"{stem}.log"]
    assert imported["metadata"]["build"]["task_id"] == 4242
