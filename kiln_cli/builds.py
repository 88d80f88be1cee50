"""Kiln's own builds API (``/kiln/v1/builds``): one build, its log read from an offset, and a
build followed to its end with its statuses and live log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from kiln_cli.client import KILN, KilnClient
from kiln_cli.follow import Snapshot, follow
from kiln_cli.output import Output

ENDED_PHASES = ("success", "error")


def build_path(build_id: str, suffix: str = "") -> str:
    return f"{KILN}/builds/{quote(build_id, safe='')}{suffix}"


def get_build(client: KilnClient, build_id: str) -> dict[str, Any]:
    return dict(client.get(build_path(build_id)))


def read_log(client: KilnClient, build_id: str, offset: int) -> dict[str, Any]:
    """``{"text", "offset", "size", "streaming"}``: the log from byte ``offset``."""
    return dict(client.get(build_path(build_id, "/log"), offset=offset))


def print_log(
    client: KilnClient,
    build_id: str,
    write: Callable[[str], None],
    keep_following: bool,
    wait: Callable[[], None],
) -> dict[str, Any]:
    """The log written as it comes; ``keep_following``: until it is final (streaming false),
    calling ``wait`` between reads. Returns the last part read."""
    offset = 0
    while True:
        part = read_log(client, build_id, offset)
        if part["text"]:
            write(part["text"])
        offset = max(offset, int(part["size"]))
        if not keep_following or not part["streaming"]:
            return part
        wait()


def follow_build(client: KilnClient, build_id: str, output: Output) -> dict[str, Any]:
    """The build, polled with its log until it ended; returns it as it ended."""
    state: dict[str, Any] = {"offset": 0, "build": {}}
    with_log = not output.json_mode

    def poll() -> Snapshot:
        build = get_build(client, build_id)
        state["build"] = build
        text, complete = "", True
        if with_log:
            part = read_log(client, build_id, state["offset"])
            text, complete = part["text"], not part["streaming"]
            state["offset"] = max(state["offset"], int(part["size"]))
        return Snapshot(
            {"": build["status"]},
            text,
            ended=build["phase"] in ENDED_PHASES,
            log_complete=complete,
            failed=build["phase"] == "error",
            walked={"": [(s["status"], s.get("seconds")) for s in build.get("steps") or []]},
        )

    interrupted = (
        f"interrupted; build {build_id} goes on (`kiln logs -f {build_id}` to follow it, "
        f"`kiln cancel {build_id}` to stop it)"
    )
    first = get_build(client, build_id)
    title = f"build {build_id}  {first.get('kind')}  {first.get('arch')}  {first.get('name')}"
    follow(output, title, poll, interrupted)
    return dict(state["build"])


def stage_summary(build: dict[str, Any]) -> str:
    """``queue_wait 1.2s · build 25.0s · total 31.0s`` from the build's recorded stages."""
    parts = [f"{s['name']} {float(s['seconds']):.1f}s" for s in build.get("stages") or []]
    total = (build.get("timing") or {}).get("total_seconds")
    if total is not None:
        parts.append(f"total {float(total):.1f}s")
    cache = (build.get("timing") or {}).get("cache")
    if cache:
        parts.append(f"cache {cache}")
    return " · ".join(parts)
