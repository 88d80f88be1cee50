"""`kiln build` as far as a Kiln without build hosts takes it: a recipe directory whose files
Kiln already holds (the same bytes: `kiln` packs deterministically) is not uploaded again but
reused, so a build of it can come from the build cache; the job is started with the public key
kiln-cli (the user's ~/.ssh key, else a throwaway one), and its id printed. The whole build,
followed and downloaded, is in tests/e2e/test_cli.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kiln_cli.ims import pack_recipe
from tests.cli.runner import KilnCommand, assert_fails
from tests.ims.helpers import SSH_KEY, V3, put_object
from tests.served import Served

RECIPE = {"name": "cli-noop", "recipe_type": "kiln-noop", "linux_distribution": "debian12"}


def recipe_dir(tmp_path: Path, body: dict[str, Any] = RECIPE) -> Path:
    directory = tmp_path / "recipe"
    (directory / "files").mkdir(parents=True)
    (directory / "recipe.json").write_text(json.dumps(body))
    (directory / "recipe.yaml").write_text("name: noop\n")
    (directory / "files" / "motd").write_text("hello\n")
    return directory


def uploaded(served: Served, directory: Path, tenant: str) -> dict[str, Any]:
    """The directory's recipe, its archive packed as `kiln` packs it, already in Kiln."""
    archive = directory.parent / "recipe.tar.gz"
    pack_recipe(directory, archive)
    path = put_object(served.kiln, f"uploads/{tenant}/cli.tar.gz", archive.read_bytes())
    body = {**json.loads((directory / "recipe.json").read_text()), "link": {"path": path}}
    body["link"]["type"] = "s3"
    created = served.call("POST", f"{V3}/recipes", body, tenant=tenant)
    assert created.status_code == 201, created.text
    assert created.json()["archive"]["status"] == "ready"
    return dict(created.json())


def kiln_keys(served: Served, tenant: str) -> list[dict[str, Any]]:
    keys = served.call("GET", f"{V3}/public-keys", tenant=tenant).json()
    return [k for k in keys if k["name"] == "kiln-cli"]


def as_tenant(kiln_cmd: KilnCommand, served: Served, tenant: str) -> KilnCommand:
    return KilnCommand(kiln_cmd.home, {**kiln_cmd.env, "KILN_TOKEN": served.kiln.token(tenant)})


def test_the_same_files_reuse_the_recipe_and_a_throwaway_key(
    kiln_cmd: KilnCommand, served: Served, tmp_path: Path
) -> None:
    directory = recipe_dir(tmp_path)
    recipe = uploaded(served, directory, "demo")
    ran = kiln_cmd("build", str(directory), "--name", "cli-image", "-o", "json")
    assert ran.code == 0, ran
    assert ran.stderr == ""
    started = ran.json()
    assert started["recipe_id"] == recipe["id"]
    assert started["job"]["id"] == started["id"]
    assert started["job"]["image_root_archive_name"] == "cli-image"
    assert started["job"]["status"] == "creating"
    [key] = kiln_keys(served, "demo")
    assert key["public_key"].startswith("ssh-ed25519 ")
    assert key["public_key"].endswith(" kiln-cli@throwaway")

    again = kiln_cmd("build", str(directory))
    assert again.code == 0, again
    job_id = again.stdout.strip()
    assert f"as recipe {recipe['id']}: using it" in again.stderr
    job = served.call("GET", f"{V3}/jobs/{job_id}").json()
    assert job["artifact_id"] == recipe["id"] and job["image_root_archive_name"] == "cli-noop"
    assert job["public_key_id"] == key["id"] and len(kiln_keys(served, "demo")) == 1


def test_the_users_own_ssh_key_is_registered(
    kiln_cmd: KilnCommand, served: Served, tmp_path: Path
) -> None:
    (kiln_cmd.home / ".ssh").mkdir()
    (kiln_cmd.home / ".ssh" / "id_ed25519.pub").write_text(SSH_KEY + "\n")
    directory = recipe_dir(tmp_path)
    uploaded(served, directory, "keyed")
    ran = as_tenant(kiln_cmd, served, "keyed")("build", str(directory), "--fresh", "-o", "json")
    assert ran.code == 0, ran
    assert ran.json()["job"]["status"] == "creating"
    [key] = kiln_keys(served, "keyed")
    assert key["public_key"] == SSH_KEY


def test_other_arch_or_other_files_are_not_the_same_recipe(
    kiln_cmd: KilnCommand, served: Served, tmp_path: Path
) -> None:
    """A recipe that differs is a new recipe record, whose archive goes to S3 through the
    presigned URL; this Kiln's (in-process moto's) point at AWS, which the test keeps `kiln`
    from reaching with a dead proxy: the upload fails as unreachable."""
    directory = recipe_dir(tmp_path)
    recipe = uploaded(served, directory, "arches")
    other = as_tenant(kiln_cmd, served, "arches")
    no_s3 = {"HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost"}
    for args in (["--arch", "aarch64"], []):
        ran = other("build", str(directory), *args, **no_s3)
        assert_fails(ran, 5, "cannot reach https://", "check the URL and the network", alone=False)
        (directory / "files" / "motd").write_text("changed\n")
    listed = served.call("GET", f"{V3}/recipes", tenant="arches").json()
    assert len(listed) == 3 and recipe["id"] in [r["id"] for r in listed]
    assert sorted(r["arch"] for r in listed) == ["aarch64", "x86_64", "x86_64"]
