"""``kiln build``: an image from a recipe directory through the IMS face, as README's "A first
build" does it: the recipe record (``recipe.json``), its archive (the other files, tar.gz)
through a presigned PUT, a public key, the create job; then, with ``--wait``, the job followed
through Kiln's builds API and its artifacts downloaded and verified."""

from __future__ import annotations

import gzip
import json
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from kiln_cli.build_outputs import download_outputs
from kiln_cli.builds import follow_build, stage_summary
from kiln_cli.client import IMS, KilnClient
from kiln_cli.errors import ApiError, BadInput, Failed
from kiln_cli.invocation import Invocation, output_option, pass_invocation
from kiln_cli.output import Output
from kiln_cli.transfer import file_digest, upload

RECIPE_FILE = "recipe.json"
KEY_NAME = "kiln-cli"
ARCHIVE_WAIT_SECONDS = 120.0


def recipe_body(recipe_dir: Path, arch: str | None) -> dict[str, Any]:
    """The IMS recipe record in ``recipe_dir/recipe.json`` (``arch`` replacing its own)."""
    path = recipe_dir / RECIPE_FILE
    if not path.is_file():
        raise BadInput(f"{path} not found: a recipe directory holds {RECIPE_FILE}, the recipe")
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadInput(f"{path} must hold a JSON object (the IMS recipe record)")
    if arch:
        body["arch"] = arch
    return body


def pack_recipe(recipe_dir: Path, archive: Path) -> None:
    """Every file of ``recipe_dir`` but recipe.json, as a tar.gz, paths relative to it. The
    same files make the same bytes (sorted, gzip without a time stamp): the same sha256."""
    with (
        archive.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w") as tar,
    ):
        for path in sorted(recipe_dir.rglob("*")):
            relative = path.relative_to(recipe_dir)
            if relative != Path(RECIPE_FILE):
                tar.add(path, arcname=str(relative), recursive=False)


def same_recipe(client: KilnClient, body: dict[str, Any], sha256: str) -> dict[str, Any] | None:
    """A ready recipe of the caller's with this body and an archive of this sha256: building
    it again can come from the build cache (a new recipe is a new SOURCE_DATE_EPOCH)."""
    wanted = {**body, "arch": body.get("arch") or "x86_64"}
    for recipe in client.get(f"{IMS}/recipes"):
        archive = recipe.get("archive") or {}
        if archive.get("status") != "ready" or archive.get("sha256") != sha256:
            continue
        if all(recipe.get(key) == value for key, value in wanted.items()):
            return dict(recipe)
    return None


def upload_recipe(
    client: KilnClient, body: dict[str, Any], archive: Path, output: Output
) -> dict[str, Any]:
    """The recipe record, its archive PUT to the presigned URL, and the recipe once Kiln has
    checked the archive (status ready, with the sha256 of what was sent)."""
    recipe = client.post(f"{IMS}/recipes", body)
    grant = client.post(f"{IMS}/recipes/{recipe['id']}/upload")
    upload(client, grant.get("method", "PUT"), grant["upload_url"], archive, output, presigned=True)
    sha256 = file_digest(archive, "sha256")
    deadline = time.monotonic() + ARCHIVE_WAIT_SECONDS
    with output.status.status("waiting for Kiln to check the recipe archive"):
        while time.monotonic() < deadline:
            current = client.get(f"{IMS}/recipes/{recipe['id']}")
            archive_state = current.get("archive") or {}
            status = archive_state.get("status")
            if status not in (None, "awaiting_upload"):
                if status != "ready":
                    reason = archive_state.get("reason") or status
                    raise Failed(f"Kiln refused the recipe archive: {reason}")
                if archive_state.get("sha256") not in (None, sha256):
                    raise Failed("the recipe archive Kiln holds is not the one uploaded")
                return dict(current)
            time.sleep(0.5)
    raise ApiError(
        f"recipe {recipe['id']}: the archive was not checked in {ARCHIVE_WAIT_SECONDS:.0f} s"
    )


def public_key_text(output: Output) -> str:
    """The user's own SSH public key, else a throwaway ed25519 one nobody holds."""
    ssh_dir = Path.home() / ".ssh"
    preferred = [ssh_dir / f"id_{kind}.pub" for kind in ("ed25519", "ecdsa", "rsa")]
    candidates = [p for p in preferred if p.is_file()] + sorted(ssh_dir.glob("id_*.pub"))
    for path in candidates:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        if text:
            return text
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public = Ed25519PrivateKey.generate().public_key()
    output.note(f"no ~/.ssh/id_*.pub: registering a throwaway ed25519 key as {KEY_NAME!r}")
    openssh = public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode("ascii")
    return f"{openssh} {KEY_NAME}@throwaway"


def public_key_id(client: KilnClient, output: Output) -> str:
    """The id of the public key named kiln-cli, registered now if there is none."""
    for key in client.get(f"{IMS}/public-keys"):
        if key.get("name") == KEY_NAME:
            return str(key["id"])
    body = {"name": KEY_NAME, "public_key": public_key_text(output)}
    return str(client.post(f"{IMS}/public-keys", body)["id"])


@click.command("build")
@click.argument(
    "recipe_dir", type=click.Path(exists=True, file_okay=False, readable=True, path_type=Path)
)
@click.option("--arch", type=click.Choice(["x86_64", "aarch64"]), help="Build for this arch.")
@click.option("--name", help="The image's name (default: the recipe's name).")
@click.option("--wait", is_flag=True, help="Follow the build to its end.")
@click.option("--fresh", is_flag=True, help="Build even if the build cache has it.")
@click.option(
    "--download",
    "download_dir",
    type=click.Path(file_okay=False, writable=True, path_type=Path),
    help="Download and verify the artifacts into this directory (implies --wait).",
)
@output_option
@pass_invocation
def build_command(
    invocation: Invocation,
    recipe_dir: Path,
    arch: str | None,
    name: str | None,
    wait: bool,
    fresh: bool,
    download_dir: Path | None,
) -> None:
    """Build an image from RECIPE_DIR (recipe.json plus the recipe's files)."""
    body = recipe_body(recipe_dir, arch)
    client, output = invocation.client(), invocation.output
    with tempfile.TemporaryDirectory(prefix="kiln-recipe-") as scratch:
        archive = Path(scratch) / "recipe.tar.gz"
        pack_recipe(recipe_dir, archive)
        recipe = same_recipe(client, body, file_digest(archive, "sha256"))
        if recipe is None:
            recipe = upload_recipe(client, body, archive, output)
        else:
            output.note(f"the same recipe and files as recipe {recipe['id']}: using it")
    job_body: dict[str, Any] = {
        "job_type": "create",
        "artifact_id": recipe["id"],
        "public_key_id": public_key_id(client, output),
        "image_root_archive_name": name or str(body.get("name") or recipe_dir.resolve().name),
    }
    if fresh:
        job_body["fresh_build"] = True
    job = client.post(f"{IMS}/jobs", job_body)
    if not (wait or download_dir):
        if output.json_mode:
            output.json({"id": job["id"], "recipe_id": recipe["id"], "job": job})
        else:
            output.line(str(job["id"]))
        return
    output.note(f"job {job['id']} (recipe {recipe['id']})")
    finish_build(client, output, str(job["id"]), download_dir)


def finish_build(
    client: KilnClient, output: Output, build_id: str, download_dir: Path | None
) -> dict[str, Any]:
    """Follow the build to its end; Failed (exit 1) if it failed; its outputs downloaded."""
    build = follow_build(client, build_id, output)
    result: dict[str, Any] = {"build": build, "download": None}
    if build["phase"] == "error":
        if output.json_mode:
            output.json(result)
        raise Failed(f"build {build_id} failed: {build.get('status_reason') or build['status']}")
    summary = stage_summary(build)
    output.note(f"build {build_id} succeeded" + (f": {summary}" if summary else ""), "green")
    try:
        if download_dir is not None:
            result["download"] = download_outputs(client, build, download_dir, output)
    finally:
        if output.json_mode:
            output.json(result)
    if download_dir is None and not output.json_mode:
        output.line(build_id)
    return result
