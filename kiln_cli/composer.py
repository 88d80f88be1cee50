"""``kiln compose``: a compose request (the osbuild-composer cloud API's body, README's "A first
compose") posted to the composer face, then with ``--wait`` followed image by image (status and
each image's log from composer's own ``/logs`` route), and with ``--download`` each image's
artifacts downloaded and verified through Kiln's builds API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from kiln_cli.build_outputs import download_outputs
from kiln_cli.builds import get_build
from kiln_cli.client import COMPOSER, KILN, KilnClient
from kiln_cli.errors import BadInput, Failed
from kiln_cli.follow import Snapshot, follow
from kiln_cli.invocation import Invocation, output_option, pass_invocation
from kiln_cli.output import Output

ENDED = ("success", "failure")


def compose_body(path: Path) -> dict[str, Any]:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadInput(f"{path} must hold a JSON object (a compose request)")
    return body


def image_label(index: int, image: dict[str, Any]) -> str:
    kind = image.get("image_type") or ""
    arch = image.get("arch") or ""
    return " ".join(part for part in (f"image {index}", kind, arch) if part)


def follow_compose(client: KilnClient, compose_id: str, output: Output) -> dict[str, Any]:
    """Poll the compose (and, in text mode, each image's log from its own offset)."""
    offsets: dict[int, int] = {}
    labels: dict[int, str] = {}
    last: dict[str, Any] = {}

    def poll() -> Snapshot:
        compose = client.get(f"{COMPOSER}/composes/{compose_id}")
        last.update(compose)
        images = compose.get("image_statuses") or []
        text, complete = "", True
        if not output.json_mode:
            for index in range(len(images)):
                logs = client.get(
                    f"{COMPOSER}/composes/{compose_id}/logs", offset=offsets.get(index, 0)
                )
                entry = logs["image_builds"][index]
                labels[index] = image_label(index, entry)
                prefix = f"[{index}] " if len(images) > 1 else ""
                text += "".join(f"{prefix}{line}\n" for line in entry["log"].splitlines())
                offsets[index] = max(offsets.get(index, 0), int(entry["size"]))
                complete = complete and not entry["streaming"]
        states = {
            labels.get(i, f"image {i}"): str(image["status"]) for i, image in enumerate(images)
        }
        return Snapshot(
            states,
            text,
            ended=compose["status"] in ENDED,
            log_complete=complete,
            failed=compose["status"] == "failure",
        )

    interrupted = f"interrupted; compose {compose_id} goes on"
    follow(output, f"compose {compose_id}", poll, interrupted)
    return last


def compose_builds(client: KilnClient, compose_id: str) -> list[dict[str, Any]]:
    """The compose's image builds as Kiln's builds API lists them (oldest first)."""
    listed = client.get(f"{KILN}/builds", face="composer", limit=200)["builds"]
    mine = [b for b in listed if str(b.get("face_url", "")).endswith(f"/composes/{compose_id}")]
    return [get_build(client, b["id"]) for b in reversed(mine)]


def failures(compose: dict[str, Any]) -> str:
    reasons = []
    for index, image in enumerate(compose.get("image_statuses") or []):
        error = image.get("error")
        if error:
            reasons.append(f"image {index}: {error.get('reason')}: {error.get('details')}")
    return "; ".join(reasons) or "compose failed"


@click.command("compose")
@click.argument("compose_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--wait", is_flag=True, help="Follow the compose to its end.")
@click.option(
    "--download",
    "download_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Download and verify each image's artifacts here (implies --wait).",
)
@output_option
@pass_invocation
def compose_command(
    invocation: Invocation, compose_file: Path, wait: bool, download_dir: Path | None
) -> None:
    """Start a compose from COMPOSE_FILE (a composer cloud API compose request)."""
    body = compose_body(compose_file)
    client, output = invocation.client(), invocation.output
    compose_id = str(client.post(f"{COMPOSER}/compose", body)["id"])
    if not (wait or download_dir):
        if output.json_mode:
            output.json({"id": compose_id})
        else:
            output.line(compose_id)
        return
    compose = follow_compose(client, compose_id, output)
    result: dict[str, Any] = {"id": compose_id, "compose": compose, "downloads": []}
    try:
        if compose["status"] != "success":
            raise Failed(f"compose {compose_id} failed: {failures(compose)}")
        output.note(f"compose {compose_id} succeeded", "green")
        if download_dir is not None:
            builds = compose_builds(client, compose_id)
            if not builds:
                raise Failed(f"Kiln lists no builds of compose {compose_id} to download")
            for build in builds:
                target = download_dir / build["id"]
                result["downloads"].append(download_outputs(client, build, target, output))
    finally:
        if output.json_mode:
            output.json(result)
    if not output.json_mode and download_dir is None:
        output.line(compose_id)
