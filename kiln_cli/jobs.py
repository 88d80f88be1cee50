"""Builds of every face through Kiln's builds API: ``kiln jobs list``, ``kiln jobs show``,
``kiln logs [-f]`` and ``kiln cancel``."""

from __future__ import annotations

import sys
import time

import click

from kiln_cli.builds import build_path, get_build, print_log, stage_summary
from kiln_cli.client import KILN
from kiln_cli.follow import POLL_SECONDS, Interrupted
from kiln_cli.invocation import Invocation, output_option, pass_invocation

FACES = ["ims", "composer", "cachito"]
STATUSES = [
    "creating",
    "fetching_image",
    "fetching_recipe",
    "waiting_for_repos",
    "building_image",
    "waiting_on_user",
    "uploading",
    "registering",
    "error",
    "success",
]
PHASES = ["queued", "running", "waiting_on_user", "success", "error"]
SHOWN = [
    "id",
    "face",
    "kind",
    "name",
    "status",
    "phase",
    "status_reason",
    "arch",
    "tenant",
    "created",
    "finished",
    "build_node",
    "face_url",
    "image_id",
]


@click.group("jobs")
def jobs_group() -> None:
    """Builds of every face (IMS jobs, composer images, Cachito requests)."""


@jobs_group.command("list")
@click.option("--face", type=click.Choice(FACES), help="Only this face's builds.")
@click.option("--status", type=click.Choice(STATUSES), help="Only builds with this status.")
@click.option("--phase", type=click.Choice(PHASES), help="Only builds in this phase.")
@click.option("--arch", type=click.Choice(["x86_64", "aarch64"]), help="Only this arch.")
@click.option("--limit", type=click.IntRange(1, 200), default=50, show_default=True)
@output_option
@pass_invocation
def list_command(
    invocation: Invocation,
    face: str | None,
    status: str | None,
    phase: str | None,
    arch: str | None,
    limit: int,
) -> None:
    """List builds, newest first."""
    client, output = invocation.client(), invocation.output
    query = {"face": face, "status": status, "phase": phase, "arch": arch, "limit": limit}
    listed = client.get(f"{KILN}/builds", **query)
    if output.json_mode:
        output.json(listed)
        return
    output.table(
        ["ID", "FACE", "KIND", "NAME", "STATUS", "ARCH", "CREATED"],
        [
            (b["id"], b["face"], b["kind"], b["name"], b["status"], b["arch"], b["created"])
            for b in listed["builds"]
        ],
    )


@jobs_group.command("show")
@click.argument("job_id")
@output_option
@pass_invocation
def show_command(invocation: Invocation, job_id: str) -> None:
    """Show build JOB_ID: its state, stages and artifacts."""
    output = invocation.output
    build = get_build(invocation.client(), job_id)
    if output.json_mode:
        output.json(build)
        return
    output.fields(build, SHOWN)
    summary = stage_summary(build)
    if summary:
        output.line(f"stages  {summary}")
    if build.get("artifacts"):
        output.table(
            ["ARTIFACT", "TYPE", "SIZE", "SHA256"],
            [(a["name"], a["type"], a["size"], a["sha256"]) for a in build["artifacts"]],
        )


@click.command("logs")
@click.argument("job_id")
@click.option("-f", "--follow", "keep_following", is_flag=True, help="Follow it to the end.")
@output_option
@pass_invocation
def logs_command(invocation: Invocation, job_id: str, keep_following: bool) -> None:
    """Print the log of build JOB_ID."""
    client, output = invocation.client(), invocation.output
    pieces: list[str] = []

    def write(text: str) -> None:
        if output.json_mode:
            pieces.append(text)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()

    try:
        last = print_log(client, job_id, write, keep_following, lambda: time.sleep(POLL_SECONDS))
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; build {job_id} goes on") from None
    if output.json_mode:
        output.json({"id": job_id, "text": "".join(pieces), **_log_state(last)})


def _log_state(part: dict[str, object]) -> dict[str, object]:
    return {"size": part.get("size"), "streaming": part.get("streaming")}


@click.command("cancel")
@click.argument("job_id")
@output_option
@pass_invocation
def cancel_command(invocation: Invocation, job_id: str) -> None:
    """Cancel build JOB_ID."""
    output = invocation.output
    cancelled = invocation.client().post(build_path(job_id, "/cancel"))
    if output.json_mode:
        output.json(cancelled)
        return
    output.line(f"{job_id} {cancelled.get('status')}: {cancelled.get('status_reason') or ''}")
