"""A finished build's artifacts downloaded (``GET /kiln/v1/builds/{id}``: presigned URLs),
each checked against the sha256 Kiln recorded, and its provenance verified where it has one."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kiln_cli import provenance
from kiln_cli.client import KilnClient
from kiln_cli.errors import Failed
from kiln_cli.output import Output, human_size
from kiln_cli.transfer import download, file_digest


def local_name(name: str) -> str:
    """The artifact's file name, without any directory part."""
    base = PurePosixPath(name.replace("\\", "/")).name
    if base in ("", ".", ".."):
        raise Failed(f"the API named an artifact {name!r}, which is no file name")
    return base


def download_outputs(
    client: KilnClient, build: dict[str, Any], directory: Path, output: Output
) -> dict[str, Any]:
    """Every artifact of ``build`` into ``directory``, checked; Failed (exit 1) once all are
    there if any checksum or the provenance does not check out. Returns what was done."""
    artifacts = build.get("artifacts") or []
    if not artifacts:
        raise Failed(f"build {build['id']} has no artifacts to download ({build.get('status')})")
    directory.mkdir(parents=True, exist_ok=True)
    files: list[dict[str, Any]] = []
    for artifact in artifacts:
        target = directory / local_name(artifact["name"])
        download(client, artifact["download_url"], target, output, presigned=True)
        sha256 = file_digest(target, "sha256")
        expected = artifact.get("sha256") or None
        files.append(
            {
                "name": target.name,
                "path": str(target),
                "type": artifact.get("type", ""),
                "size": target.stat().st_size,
                "sha256": sha256,
                "sha256_ok": None if expected is None else sha256 == expected,
            }
        )
    result: dict[str, Any] = {"directory": str(directory), "files": files, "provenance": None}
    bad = [f["name"] for f in files if f["sha256_ok"] is False]
    envelope = next((f for f in files if f["type"] == provenance.ENVELOPE_TYPE), None)
    if envelope is None and build.get("provenance"):
        target = directory / "provenance.dsse.json"
        download(client, build["provenance"], target, output, presigned=True)
        envelope = {"name": target.name, "path": str(target)}
    _show(files, output)
    if bad:
        raise Failed(f"sha256 mismatch for {', '.join(bad)}: the download is not what Kiln built")
    if envelope is None:
        output.note("no provenance for this build: nothing to verify it against", "yellow")
        return result
    checked = {f["name"]: f["sha256"] for f in files if f["name"] != envelope["name"]}
    verified = provenance.verify(Path(envelope["path"]), checked, provenance.published_keys(client))
    result["provenance"] = verified.as_json()
    output.note(
        f"provenance verified: {len(verified.subjects)} file(s) attested by job "
        f"{verified.invocation}, signed by {', '.join(verified.keyids)}",
        "green",
    )
    return result


def _show(files: list[dict[str, Any]], output: Output) -> None:
    if output.json_mode:
        return
    marks = {True: "ok", False: "MISMATCH", None: "not recorded"}
    output.table(
        ["FILE", "SIZE", "SHA256", "CHECK"],
        [(f["path"], human_size(f["size"]), f["sha256"], marks[f["sha256_ok"]]) for f in files],
    )
