"""The whole product as a newcomer runs it: the `make up` stack over HTTP, a real build."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from infra.local.process import StackProcess
from tests.conftest import ROOT, example_archive, make_archive

pytestmark = pytest.mark.slow
SSH_KEY = ROOT / "tests" / "e2e" / "id_test.pub"


def wait_for_job(stack: StackProcess, job_id: str, timeout: float) -> tuple[dict, list[str]]:
    seen: list[str] = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = stack.ims("GET", f"/v3/jobs/{job_id}").json()
        if not seen or seen[-1] != job["status"]:
            seen.append(job["status"])
        if job["status"] in ("success", "error"):
            return job, seen
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {seen} after {timeout}s\n{stack.output()}")


def upload_recipe(stack: StackProcess, body: dict[str, Any], archive: bytes) -> dict[str, Any]:
    """POST the recipe, PUT its archive to the presigned URL, wait for the upload event."""
    recipe = stack.ims("POST", "/v3/recipes", json=body)
    assert recipe.status_code == 201, recipe.text
    grant = stack.ims("POST", f"/v3/recipes/{recipe.json()['id']}/upload").json()
    assert requests.put(grant["upload_url"], data=archive, timeout=30).status_code == 200
    deadline = time.time() + 30
    while time.time() < deadline:
        current = stack.ims("GET", f"/v3/recipes/{recipe.json()['id']}").json()
        if current["archive"]["status"] != "awaiting_upload":
            assert current["archive"]["status"] == "ready", current
            assert current["archive"]["sha256"] == hashlib.sha256(archive).hexdigest()
            return dict(current)
        time.sleep(0.3)
    raise AssertionError("the upload event was never handled\n" + stack.output())


def upload_example(stack: StackProcess, name: str) -> dict[str, Any]:
    body = json.loads((ROOT / "examples" / "recipes" / name / "recipe.json").read_text())
    return upload_recipe(stack, body, example_archive(name))


def public_key(stack: StackProcess) -> dict[str, Any]:
    body = {"name": "e2e", "public_key": SSH_KEY.read_text().strip()}
    response = stack.ims("POST", "/v3/public-keys", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def start_job(stack: StackProcess, recipe: dict[str, Any], key: dict[str, Any], name: str) -> str:
    body = {
        "job_type": "create",
        "artifact_id": recipe["id"],
        "public_key_id": key["id"],
        "image_root_archive_name": name,
    }
    job = stack.ims("POST", "/v3/jobs", json=body).json()
    assert job["status"] == "creating", job
    return str(job["id"])


def test_real_build_over_http(stack: StackProcess) -> None:
    assert requests.get(f"{stack.info['ims_url']}/healthz/ready", timeout=5).status_code == 200
    job_id = start_job(stack, upload_example(stack, "ssh-server"), public_key(stack), "e2e-ssh")
    done, seen = wait_for_job(stack, job_id, timeout=900)
    assert done["status"] == "success", (done, stack.output())
    assert "building_image" in seen

    image = stack.ims("GET", f"/v3/images/{done['resultant_image_id']}").json()
    assert image["name"] == "e2e-ssh" and image["link"]["path"].endswith("/manifest.json")
    manifest = stack.ims("GET", f"/v3/images/{image['id']}/manifest").json()
    types = {a["type"]: a for a in manifest["artifacts"]}
    assert {
        "application/vnd.cray.image.rootfs.squashfs",
        "application/vnd.cray.image.kernel",
        "application/vnd.cray.image.initrd",
    } <= set(types)
    rootfs = types["application/vnd.cray.image.rootfs.squashfs"]
    data = requests.get(rootfs["download_url"], timeout=120).content
    assert hashlib.sha256(data).hexdigest() == rootfs["sha256"]
    assert hashlib.md5(data).hexdigest() == rootfs["md5"] and len(data) == rootfs["size"]
    listing = _unsquash_list(data, Path(stack.state_dir))
    assert "squashfs-root/home/kiln/.ssh/authorized_keys" in listing
    assert "squashfs-root/usr/sbin/sshd" in listing
    image_file = Path(stack.state_dir) / "rootfs.squashfs"
    motd = _unsquash_cat(image_file, "etc/motd")
    assert "Welcome to a Kiln-built Debian 12 SSH server." in motd  # template_dictionary
    assert "kiln-example@example.invalid" in _unsquash_cat(
        image_file, "home/kiln/.ssh/authorized_keys"
    )

    # a second tenant sees none of it
    other = _token("other", stack)
    for path in ("/v3/recipes", "/v3/jobs", "/v3/images", "/v3/public-keys"):
        assert stack.ims("GET", path, token=other).json() == []
    assert stack.ims("GET", f"/v3/images/{image['id']}", token=other).status_code == 404


def test_failing_build_ends_in_error_with_reason(stack: StackProcess) -> None:
    body = {"name": "broken", "recipe_type": "kiln-debian", "linux_distribution": "debian12"}
    archive = make_archive({"recipe.yaml": "suite: bookworm\npackages: [kiln-no-such-package]\n"})
    job_id = start_job(stack, upload_recipe(stack, body, archive), public_key(stack), "broken")
    done, _ = wait_for_job(stack, job_id, timeout=600)
    assert done["status"] == "error"
    assert "kiln-no-such-package" in done["status_reason"], done
    log = stack.ims("GET", f"/v3/jobs/{job_id}/log")
    assert log.status_code == 200 and "kiln-no-such-package" in log.text


def _token(tenant: str, stack: StackProcess) -> str:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.local.tokens",
            "--tenant",
            tenant,
            "--role",
            "user",
            "--state-dir",
            str(stack.state_dir),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def _unsquash_list(data: bytes, scratch: Path) -> str:
    image = scratch / "rootfs.squashfs"
    image.write_bytes(data)
    return subprocess.run(
        ["unsquashfs", "-l", str(image)], check=True, capture_output=True, text=True
    ).stdout


def _unsquash_cat(image: Path, path: str) -> str:
    return subprocess.run(
        ["unsquashfs", "-cat", str(image), path], check=True, capture_output=True, text=True
    ).stdout


def test_a_burst_of_concurrent_writers_all_get_answers(stack: StackProcess) -> None:
    """200 clients write at once through the front (IMS recipes, Glance images, PATCHes of one
    image): every one gets an HTTP answer, so none is left wondering whether its write
    happened, and every create that was answered 201 is there afterwards."""
    import concurrent.futures
    import threading

    from infra.local import tokens

    private_pem = (stack.state_dir / "jwt-private.pem").read_bytes()
    token = tokens.mint(private_pem, "burst", "user")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    api, ims = stack.info["api_url"], stack.info["ims_url"]
    image = requests.post(f"{ims}/v3/images", json={"name": "p"}, headers=headers, timeout=30)
    assert image.status_code == 201, image.text
    gate = threading.Barrier(200)

    def write(n: int) -> tuple[str, int]:
        session = requests.Session()  # a connection of its own
        gate.wait(timeout=60)
        if n % 4 == 0:
            body = {"metadata": {"operation": "set", "key": f"k{n}", "value": "v"}}
            url = f"{ims}/v3/images/{image.json()['id']}"
            return "patch", session.patch(url, json=body, headers=headers, timeout=120).status_code
        if n % 2 == 0:
            recipe = {"name": f"r{n}", "recipe_type": "kiln-noop", "linux_distribution": "debian12"}
            answer = session.post(f"{ims}/v3/recipes", json=recipe, headers=headers, timeout=120)
            return "recipe", answer.status_code
        answer = session.post(
            f"{api}/v2/images", json={"name": f"g{n}"}, headers=headers, timeout=120
        )
        return "glance", answer.status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=200) as pool:
        answers = list(pool.map(write, range(200)))
    assert {status for kind, status in answers if kind != "patch"} == {201}, answers
    assert {status for kind, status in answers if kind == "patch"} <= {200, 409}, answers
    recipes = requests.get(f"{ims}/v3/recipes", headers=headers, timeout=30).json()
    assert len(recipes) == sum(kind == "recipe" for kind, _ in answers)
    listed = requests.get(f"{api}/v2/images?limit=1000", headers=headers, timeout=30).json()
    assert len(listed["images"]) == sum(kind == "glance" for kind, _ in answers)
    metadata = requests.get(f"{ims}/v3/images/{image.json()['id']}", headers=headers, timeout=30)
    patched = sum(1 for kind, status in answers if kind == "patch" and status == 200)
    assert len(metadata.json()["metadata"]) == patched


def test_the_stack_service_account_gets_a_token_for_the_composer_api(stack: StackProcess) -> None:
    """What koji-osbuild's `[composer:oauth]` does against `make up`: client credentials from
    stack.json to its token_url, then the Bearer token on the composer API."""
    account = stack.info["service_account"]
    assert (account["tenant"], account["role"]) == ("demo", "user")
    assert stack.info["token_url"].endswith("/oauth2/token")
    form = {"grant_type": "client_credentials", "client_id": account["client_id"]}
    answer = requests.post(
        stack.info["token_url"],
        data={**form, "client_secret": account["client_secret"]},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    token = answer.json()
    assert token["token_type"] == "Bearer" and token["expires_in"] > 0
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    missing = requests.get(
        f"{stack.info['composer_url']}/composes/{uuid.uuid4()}", headers=headers, timeout=30
    )
    assert missing.status_code == 404, missing.text
    wrong = requests.post(stack.info["token_url"], data={**form, "client_secret": "x"}, timeout=30)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
