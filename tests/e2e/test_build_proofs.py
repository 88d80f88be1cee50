"""Every artifact carries its proof, on the `make up` stack with real Debian builds: the SBOM
checked against the image itself, the provenance verified as the README says (and a
tampered copy refused), the same recipe again served from the build cache, a rebuild that
compares byte for byte, and each build's stage timings and cost."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from infra.local.process import StackProcess
from tests.conftest import ROOT, make_archive
from tests.e2e.test_local_stack import (
    public_key,
    upload_example,
    upload_recipe,
    wait_for_job,
)

pytestmark = pytest.mark.slow

SBOM_CDX = "application/vnd.cyclonedx+json"
PROVENANCE = "application/vnd.dsse.envelope.v1+json"
ROOTFS = "application/vnd.cray.image.rootfs.squashfs"
#: a recipe whose image differs on every build: what the rebuild check must catch
UNREPRODUCIBLE = """\
suite: bookworm
variant: minbase
hostname: kiln-unreproducible
customize:
  - head -c 32 /dev/urandom | od -An -tx1 > /etc/kiln-build-nonce
"""


def _build(stack: StackProcess, recipe: dict[str, Any], name: str, **extra: Any) -> dict:
    body = {
        "job_type": "create",
        "artifact_id": recipe["id"],
        "public_key_id": public_key(stack)["id"],
        "image_root_archive_name": name,
        **extra,
    }
    created = stack.ims("POST", "/v3/jobs", json=body)
    assert created.status_code == 201, created.text
    done, _ = wait_for_job(stack, created.json()["id"], timeout=900)
    assert done["status"] == "success", (done, stack.output())
    return dict(done)


def _manifest(stack: StackProcess, job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    image_id = job["resultant_image_id"]
    manifest = stack.ims("GET", f"/v3/images/{image_id}/manifest").json()
    return {a["type"]: a for a in manifest["artifacts"]}


def _download(artifact: dict[str, Any], target: Path) -> Path:
    response = requests.get(artifact["download_url"], timeout=300)
    assert response.status_code == 200
    target.write_bytes(response.content)
    assert hashlib.sha256(response.content).hexdigest() == artifact["sha256"]
    return target


@pytest.fixture(scope="module")
def first(stack: StackProcess) -> dict[str, Any]:
    """The minimal Debian recipe, built once, fresh (never from an earlier run's cache)."""
    recipe = upload_example(stack, "minimal")
    job = _build(stack, recipe, "proof", fresh_build=True)
    return {"recipe": recipe, "job": job, "artifacts": _manifest(stack, job)}


def test_the_sbom_lists_what_is_in_the_image(
    stack: StackProcess, first: dict[str, Any], tmp_path: Path
) -> None:
    artifacts = first["artifacts"]
    sbom = json.loads(_download(artifacts[SBOM_CDX], tmp_path / "sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.6"
    listed = {c["name"]: c for c in sbom["components"] if c["type"] == "library"}
    rootfs = _download(artifacts[ROOTFS], tmp_path / "rootfs.squashfs")
    status = subprocess.run(
        ["unsquashfs", "-cat", str(rootfs), "var/lib/dpkg/status"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    installed = {}
    for stanza in status.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
        )
        if "install ok installed" in fields.get("Status", ""):
            installed[fields["Package"]] = fields["Version"]
    assert set(listed) == set(installed)
    for name in ("base-files", "dpkg", "libc6", "apt"):
        component = listed[name]
        assert component["version"] == installed[name]
        assert component["purl"].startswith(f"pkg:deb/debian/{name}@")
        assert "arch=amd64" in component["purl"]
        assert any(h["alg"] == "SHA-256" for h in component.get("hashes", []))
    spdx = first["artifacts"]["application/spdx+json"]
    assert json.loads(requests.get(spdx["download_url"], timeout=60).text)["spdxVersion"] == (
        "SPDX-2.3"
    )


def test_the_provenance_verifies_and_a_tampered_artifact_does_not(
    stack: StackProcess, first: dict[str, Any], tmp_path: Path
) -> None:
    artifacts = first["artifacts"]
    envelope = _download(artifacts[PROVENANCE], tmp_path / "provenance.dsse.json")
    rootfs = _download(artifacts[ROOTFS], tmp_path / "rootfs.squashfs")
    keys_url = f"{stack.info['api_url']}/kiln/v1/provenance/keys"
    command = [sys.executable, str(ROOT / "examples" / "verify_provenance.py"), str(envelope)]
    verified = subprocess.run(
        [*command, str(rootfs), "--key-url", keys_url], capture_output=True, text=True
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    statement = json.loads(base64.b64decode(json.loads(envelope.read_text())["payload"]))
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert statement["predicate"]["runDetails"]["metadata"]["invocationId"] == first["job"]["id"]
    tampered = tmp_path / "tampered.squashfs"
    data = bytearray(rootfs.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    refused = subprocess.run(
        [*command, str(tampered), "--key-url", keys_url], capture_output=True, text=True
    )
    assert refused.returncode != 0


def test_the_same_recipe_again_comes_from_the_cache(
    stack: StackProcess, first: dict[str, Any]
) -> None:
    second = _build(stack, first["recipe"], "proof")
    timing = second["timing"]
    assert timing["cache"] == "hit", timing
    assert "build" not in timing["stages"] and timing["instance_seconds"] < 30
    assert first["job"]["timing"]["cache"] == "miss"
    again = _manifest(stack, second)
    for kind in (ROOTFS, SBOM_CDX):
        assert again[kind]["sha256"] == first["artifacts"][kind]["sha256"]
    assert second["resultant_image_id"] != first["job"]["resultant_image_id"]


def test_each_build_shows_its_stages_and_cost(first: dict[str, Any]) -> None:
    timing = first["job"]["timing"]
    assert {"queue_wait", "fetch", "resolve", "build", "package"} <= set(timing["stages"])
    assert timing["stages"]["build"] > 5
    assert timing["cost"]["currency"] == "USD" and timing["cost"]["estimate"] > 0


def _rebuild_check(stack: StackProcess, image_id: str) -> dict[str, Any]:
    asked = stack.ims("POST", f"/v3/images/{image_id}/rebuild-check", json={})
    assert asked.status_code == 202, asked.text
    deadline = time.time() + 900
    while time.time() < deadline:
        found = stack.ims("GET", f"/v3/images/{image_id}").json().get("reproducibility") or {}
        if found.get("status") not in (None, "pending", "running"):
            return dict(found)
        time.sleep(1)
    raise AssertionError(f"the rebuild check never ended\n{stack.output()}")


def test_a_debian_image_is_reproducible(stack: StackProcess, first: dict[str, Any]) -> None:
    result = _rebuild_check(stack, first["job"]["resultant_image_id"])
    assert result["status"] == "reproducible", result
    compared = result["result"]["artifacts"]
    assert compared and all(a["identical"] for a in compared), result
    assert result["result"]["verdict"] == "reproducible"


def test_a_deliberately_unreproducible_recipe_is_caught(stack: StackProcess) -> None:
    body = {
        "name": "unreproducible",
        "recipe_type": "kiln-debian",
        "linux_distribution": "debian12",
        "arch": "x86_64",
    }
    recipe = upload_recipe(stack, body, make_archive({"recipe.yaml": UNREPRODUCIBLE}))
    job = _build(stack, recipe, "nonce")
    result = _rebuild_check(stack, job["resultant_image_id"])
    assert result["status"] == "not_reproducible", result
    differing = [a["name"] for a in result["result"]["artifacts"] if not a["identical"]]
    assert "nonce.squashfs" in differing, result
    assert "nonce.squashfs" in result["result"]["summary"]
