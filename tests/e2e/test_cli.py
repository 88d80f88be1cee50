"""The `kiln` command line against the `make up` stack, configured by nothing but its
stack.json (KILN_STATE_DIR): a real build followed to success with its artifacts downloaded
and checked against their sha256 and signed provenance, its log and its place in the jobs
list, a Cachito request followed to its bundle (Digest checked), and an OMPS push."""

from __future__ import annotations

import hashlib
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from infra.local.process import StackProcess
from tests.cachito.git_server import GitServer
from tests.cli.runner import KilnCommand, Ran
from tests.conftest import ROOT
from tests.omps.operators import PACKAGE, flat_operator

pytestmark = pytest.mark.slow

PYPROJECT = '[project]\nname = "cli-app"\nversion = "1.0.0"\n'


@pytest.fixture(scope="module")
def kiln_cmd(stack: StackProcess, tmp_path_factory: pytest.TempPathFactory) -> KilnCommand:
    return KilnCommand(tmp_path_factory.mktemp("home"), {"KILN_STATE_DIR": str(stack.state_dir)})


@pytest.fixture(scope="module")
def built(kiln_cmd: KilnCommand, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """examples/recipes/minimal built with `kiln build --wait --download`."""
    artifacts = tmp_path_factory.mktemp("artifacts")
    recipe = ROOT / "examples" / "recipes" / "minimal"
    ran = kiln_cmd("build", str(recipe), "--wait", "--download", str(artifacts), timeout=1200)
    assert ran.code == 0, ran
    found = re.search(r"^job (\S+) \(recipe (\S+)\)$", ran.stderr, re.MULTILINE)
    assert found, ran.stderr
    return {"ran": ran, "job_id": found.group(1), "recipe_id": found.group(2), "dir": artifacts}


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    with GitServer(tmp_path_factory.mktemp("repos")) as server:
        yield server


def build_record(stack: StackProcess, job_id: str) -> dict[str, Any]:
    response = requests.get(
        f"{stack.info['api_url']}/kiln/v1/builds/{job_id}",
        headers={"Authorization": f"Bearer {stack.info['tokens']['user']}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_build_is_followed_to_success_and_its_artifacts_verified(
    stack: StackProcess, built: dict[str, Any]
) -> None:
    ran: Ran = built["ran"]
    for status in ("creating", "building_image", "success"):
        assert status in ran.stderr, ran.stderr  # the stages of the live display
    assert f"build {built['job_id']} succeeded" in ran.stderr
    assert "provenance verified:" in ran.stderr
    record = build_record(stack, built["job_id"])
    assert record["status"] == "success" and record["provenance"]
    names = set()
    for artifact in record["artifacts"]:
        path = built["dir"] / artifact["name"]
        assert path.is_file(), artifact
        assert hashlib.sha256(path.read_bytes()).hexdigest() == artifact["sha256"]
        assert str(path) in ran.stdout  # the table of what was downloaded
        names.add(artifact["name"])
    assert "provenance.dsse.json" in names and any(n.endswith(".squashfs") for n in names), names


def test_logs_of_the_build_and_the_jobs_list(kiln_cmd: KilnCommand, built: dict[str, Any]) -> None:
    logs = kiln_cmd("logs", built["job_id"])
    assert logs.code == 0, logs
    lines = [line for line in logs.stdout.splitlines() if line.strip()]
    assert len(lines) > 5, logs.stdout
    assert lines[0] in built["ran"].stderr and lines[-1] in built["ran"].stderr  # shown live

    listed = kiln_cmd("jobs", "list", "-o", "json")
    assert listed.code == 0, listed
    [build] = [b for b in listed.json()["builds"] if b["id"] == built["job_id"]]
    assert build["face"] == "ims" and build["status"] == "success"


def test_the_same_recipe_again_started_then_followed_by_its_log(
    stack: StackProcess, kiln_cmd: KilnCommand, built: dict[str, Any]
) -> None:
    recipe = ROOT / "examples" / "recipes" / "minimal"
    # the same files: the first build's recipe (its SOURCE_DATE_EPOCH), and the same image name
    # (the recipe's, given explicitly): the same build plan
    started = kiln_cmd("build", str(recipe), "--name", "kiln-minimal", "-o", "json")
    assert started.code == 0, started
    assert started.json()["recipe_id"] == built["recipe_id"]
    job_id = started.json()["id"]
    assert started.json()["job"]["image_root_archive_name"] == "kiln-minimal"
    followed = kiln_cmd("logs", "-f", job_id, timeout=600)
    assert followed.code == 0, followed
    assert "build cache hit" in followed.stdout, followed.stdout
    record = build_record(stack, job_id)
    assert record["status"] == "success" and record["timing"]["cache"] == "hit"


def test_a_cachito_request_is_followed_to_its_bundle(
    kiln_cmd: KilnCommand, git: GitServer, tmp_path: Path
) -> None:
    repo, ref = git.repo("cli-app", {"pyproject.toml": PYPROJECT, "requirements.txt": ""})
    bundle_dir = tmp_path / "bundle"
    ran = kiln_cmd("sources", repo, ref, "--pm", "pip", "--download", str(bundle_dir), timeout=900)
    assert ran.code == 0, ran
    assert "Completed successfully" in ran.stderr and "matches the Digest header" in ran.stderr
    [bundle] = bundle_dir.glob("cachito-*.tar.gz")
    assert ran.stdout.strip() == str(bundle)
    with tarfile.open(bundle) as tar:
        assert "app/pyproject.toml" in tar.getnames()


def test_an_operator_push(kiln_cmd: KilnCommand, tmp_path: Path) -> None:
    archive = tmp_path / "operator.zip"
    archive.write_bytes(flat_operator())
    ran = kiln_cmd("operator", "push", str(archive), "cli-e2e", "-o", "json")
    assert ran.code == 0, ran
    assert ran.json()["repo"] == PACKAGE and ran.json()["version"] == "1.0.0"
