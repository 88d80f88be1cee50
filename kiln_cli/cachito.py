"""``kiln sources``: a Cachito request (a repository at a commit and its dependencies, as one
bundle), followed through its states with its log, and its bundle downloaded with the
sha256 of its ``Digest`` header checked."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

import click

from kiln_cli.client import CACHITO, KilnClient
from kiln_cli.errors import Failed, KilnError
from kiln_cli.follow import Snapshot, follow
from kiln_cli.invocation import Invocation, output_option, pass_invocation
from kiln_cli.output import Output
from kiln_cli.transfer import download, file_digest

PACKAGE_MANAGERS = ["pip", "npm", "yarn", "gomod", "git-submodule", "rubygems"]
IN_PROGRESS = "in_progress"


def request_path(request_id: str, suffix: str = "") -> str:
    return f"{CACHITO}/requests/{request_id}{suffix}"


def digest_sha256(header: str | None) -> str | None:
    """The hex sha256 of a ``Digest: sha-256=<base64>`` header (one of its comma-separated
    values), or None."""
    for value in (header or "").split(","):
        name, _, encoded = value.strip().partition("=")
        if name.strip().lower() == "sha-256":
            try:
                return base64.b64decode(encoded.strip(), validate=True).hex()
            except (binascii.Error, ValueError):
                return None
    return None


def follow_request(client: KilnClient, request_id: str, output: Output) -> dict[str, Any]:
    """Poll the request until it left in_progress; its log (text mode) from the logs route."""
    printed = {"chars": 0}
    last: dict[str, Any] = {}

    def poll() -> Snapshot:
        request = client.get(request_path(request_id))
        last.clear()
        last.update(request)
        text = ""
        if not output.json_mode:
            try:
                log = client.call("GET", request_path(request_id, "/logs")).text
            except KilnError:  # no log (yet, or any more): the states still show
                log = ""
            text, printed["chars"] = log[printed["chars"] :], max(printed["chars"], len(log))
        state = str(request["state"])
        reason = str(request.get("state_reason") or state)
        return Snapshot(
            {"": reason},
            text,
            ended=state != IN_PROGRESS,
            log_complete=True,
            failed=state != "complete",
        )

    follow(
        output, f"Cachito request {request_id}", poll, f"interrupted; request {request_id} goes on"
    )
    return last


def download_bundle(
    client: KilnClient, request_id: str, directory: Path, output: Output
) -> dict[str, Any]:
    """The bundle into ``directory``; Failed if its sha256 is not the Digest header's."""
    target = directory / f"cachito-{request_id}.tar.gz"
    got = download(client, request_path(request_id, "/download"), target, output)
    expected = digest_sha256(got.headers.get("Digest"))
    sha256 = file_digest(target, "sha256")
    if expected is None:
        raise Failed(f"the bundle of request {request_id} came without a sha-256 Digest header")
    if sha256 != expected:
        raise Failed(f"{target}: sha256 {sha256} is not the Digest header's {expected}")
    output.note(f"{target}: sha256 matches the Digest header", "green")
    return {"path": str(target), "sha256": sha256, "digest_ok": True}


@click.command("sources")
@click.argument("repo")
@click.argument("ref")
@click.option(
    "--pm",
    "package_managers",
    multiple=True,
    type=click.Choice(PACKAGE_MANAGERS),
    help="A package manager whose dependencies to fetch (repeat for more).",
)
@click.option("--wait", is_flag=True, help="Follow the request to its end.")
@click.option(
    "--download",
    "download_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Download the bundle here and check its Digest (implies --wait).",
)
@output_option
@pass_invocation
def sources_command(
    invocation: Invocation,
    repo: str,
    ref: str,
    package_managers: tuple[str, ...],
    wait: bool,
    download_dir: Path | None,
) -> None:
    """Fetch REPO at commit REF and its dependencies as one bundle (a Cachito request)."""
    client, output = invocation.client(), invocation.output
    body = {"repo": repo, "ref": ref, "pkg_managers": list(package_managers)}
    created = client.post(f"{CACHITO}/requests", body)
    request_id = str(created["id"])
    if not (wait or download_dir):
        if output.json_mode:
            output.json(created)
        else:
            output.line(request_id)
        return
    request = follow_request(client, request_id, output)
    result: dict[str, Any] = {"id": request_id, "request": request, "bundle": None}
    try:
        if request.get("state") != "complete":
            reason = request.get("state_reason") or request.get("state")
            raise Failed(f"request {request_id} ended {request.get('state')}: {reason}")
        output.note(f"request {request_id} complete", "green")
        if download_dir is not None:
            download_dir.mkdir(parents=True, exist_ok=True)
            result["bundle"] = download_bundle(client, request_id, download_dir, output)
    finally:
        if output.json_mode:
            output.json(result)
    if not output.json_mode:
        output.line(result["bundle"]["path"] if result["bundle"] else request_id)
