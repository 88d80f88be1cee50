"""A rebuild check (docs/reproducibility.md): the rebuilt artifacts against the original's,
byte for byte.

The job message's ``compare_with`` is ``{"image_id", "node", "artifacts": [{key, type, size,
sha256}], "avoid_node"}``: the image to reproduce, the node that built it, and its artifacts
as its job recorded them. Each original artifact is matched with the rebuilt file of the
same type and file name (the build log and the provenance envelope are not compared: they
name the job). An artifact whose sha256 differs is downloaded and summarised: both sizes, the
first differing byte, and diffoscope's text report (cut) when diffoscope is installed.

The build plans (``build-plan.json``, kiln-debian) say what each build was made from; when
the rebuild's differs in its inputs (the mirror's Release, a package version, the recipe, the
build tools) it was not the same build, and the verdict is ``inputs_changed``, whatever the
bytes say.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from builders.backends.base import BUILD_LOG, BUILD_PLAN_JSON, Artifact, BuildError
from chalicelib.host_protocol import JobMessage, MediaType

NOT_COMPARED = (BUILD_LOG, MediaType.PROVENANCE)
DIFFOSCOPE_SECONDS = 900  # per artifact
DIFFOSCOPE_REPORT_BYTES = 65536  # what diffoscope is asked to write at most
DIFFOSCOPE_KEPT = 4096  # characters of each report kept in the result
DIFFOSCOPE_TOTAL = 16384  # characters of all reports kept
NOT_INSTALLED = "diffoscope is not installed on the build host"
CHUNK = 1 << 20
#: build-plan fields that are inputs of the build (kiln-build-plan/1, docs/recipes.md)
PLAN_INPUTS = (
    "format",
    "recipe",
    "template_dictionary",
    "mirror",
    "suite",
    "codename",
    "release_sha256",
    "architecture",
    "source_date_epoch",
    "inputs",
)
LABELS = {
    "recipe": "the recipe",
    "inputs": "the recipe archive's files",
    "template_dictionary": "the template dictionary",
}
LISTED_CHANGES = 8  # package changes named in the summary


def compare_with_original(
    job: JobMessage, artifacts: list[Artifact], s3: Any, work_dir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """BuildOutput.comparison for ``job.compare_with`` (the shape: docs/reproducibility.md)."""
    wanted = job.compare_with or {}
    originals = [a for a in wanted.get("artifacts") or [] if a.get("type") not in NOT_COMPARED]
    rebuilt = {(a.type, a.path.name): a.path for a in artifacts if a.type not in NOT_COMPARED}
    fetched_dir = work_dir / "original"
    fetched_dir.mkdir(parents=True, exist_ok=True)
    rows, fetched, notes = [], {}, []
    for original in originals:
        name = str(original.get("key", "")).rsplit("/", 1)[-1]
        path = rebuilt.pop((original.get("type"), name), None)
        row = _row(name, original, path)
        if path is not None and not row["identical"]:
            local = _download(s3, job.bucket, str(original["key"]), fetched_dir / name)
            if _digest(local)[0] != original.get("sha256"):
                notes.append(f"the original {name} in S3 no longer has the sha256 its job recorded")
            row["first_difference"] = first_difference(local, path)
            fetched[name] = (local, path)
        rows.append(row)
        log(f"I: kiln: compare {name}: {'identical' if row['identical'] else 'differs'}")
    for (kind, name), path in sorted(rebuilt.items()):
        rows.append(_row(name, {"type": kind}, path, original_missing=True))
        log(f"I: kiln: compare {name}: only in the rebuild")
    inputs = _input_changes(rows, fetched)
    reports = _reports(fetched, work_dir, log)
    verdict = _verdict(rows, inputs)
    return {
        "reproducible": {"reproducible": True, "not_reproducible": False}.get(verdict),
        "verdict": verdict,
        "image_id": wanted.get("image_id"),
        "original_node": wanted.get("node"),
        "artifacts": rows,
        "inputs": inputs,
        "summary": summary(rows, inputs, verdict, notes, reports),
        "diffoscope": reports,
    }


def _row(
    name: str, original: dict[str, Any], path: Path | None, original_missing: bool = False
) -> dict[str, Any]:
    digest, size = _digest(path) if path is not None else (None, None)
    original_sha = None if original_missing else original.get("sha256")
    original_size = None if original_missing else original.get("size")
    return {
        "name": name,
        "type": original.get("type"),
        "original_sha256": original_sha,
        "rebuilt_sha256": digest,
        "identical": digest is not None and digest == original_sha,
        "size": [original_size, size],
        "first_difference": None,
    }


def _digest(path: Path) -> tuple[str, int]:
    sha256, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            sha256.update(chunk)
            size += len(chunk)
    return sha256.hexdigest(), size


def _download(s3: Any, bucket: str, key: str, target: Path) -> Path:
    try:
        s3.download_file(bucket, key, str(target))
    except Exception as exc:  # botocore's errors: the original is gone or unreadable
        raise BuildError(f"cannot fetch the original artifact {key} to compare: {exc}") from exc
    return target


def first_difference(a: Path, b: Path) -> int | None:
    """The offset of the first byte that differs (the shorter file's size when one is the
    other's beginning); None when the files are equal."""
    offset = 0
    with a.open("rb") as left, b.open("rb") as right:
        while True:
            x, y = left.read(CHUNK), right.read(CHUNK)
            if x != y:
                same = next((i for i, (p, q) in enumerate(zip(x, y, strict=False)) if p != q), None)
                return offset + (min(len(x), len(y)) if same is None else same)
            if not x:
                return None
            offset += len(x)


# --- the build plans -------------------------------------------------------------------------


def _input_changes(
    rows: list[dict[str, Any]], fetched: dict[str, tuple[Path, Path]]
) -> dict[str, Any]:
    """``{"compared": bool, "changes": [text]}``: whether both builds had a build plan, and
    how the rebuild's inputs differ from the original's (none when the plans are identical)."""
    plans = [row for row in rows if row["type"] == BUILD_PLAN_JSON]
    if not plans or any(
        row["original_sha256"] is None or not row["rebuilt_sha256"] for row in plans
    ):
        return {"compared": False, "changes": []}
    changes: list[str] = []
    for row in plans:
        if row["identical"]:
            continue
        original, rebuilt = (_load(path) for path in fetched[row["name"]])
        if original is None or rebuilt is None:
            changes.append(f"{row['name']} is not a JSON object on one side")
            continue
        changes += plan_changes(original, rebuilt)
    return {"compared": True, "changes": changes}


def _load(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def plan_changes(original: dict[str, Any], rebuilt: dict[str, Any]) -> list[str]:
    """What differs between two build plans' inputs, in words (original → rebuild)."""
    changes = []
    for field in PLAN_INPUTS:
        if original.get(field) != rebuilt.get(field):
            if field == "release_sha256":
                changes.append(
                    f"the mirror's Release file changed ({_short(original.get(field))} → "
                    f"{_short(rebuilt.get(field))}): the mirror moved on"
                )
            elif isinstance(original.get(field), str | int | None):
                changes.append(f"{field}: {original.get(field)!r} → {rebuilt.get(field)!r}")
            else:
                changes.append(f"{LABELS.get(field, field)} changed")
    changes += _repository_changes(original.get("repositories"), rebuilt.get("repositories"))
    changes += _package_changes(original.get("packages"), rebuilt.get("packages"))
    tools = _mapping_changes(original.get("tools"), rebuilt.get("tools"))
    if tools:
        changes.append("build tools differ: " + "; ".join(tools))
    return changes


def _short(digest: Any) -> str:
    return str(digest)[:12] if digest else "none"


def _repository_changes(original: Any, rebuilt: Any) -> list[str]:
    before = {r.get("url"): r for r in original or [] if isinstance(r, dict)}
    after = {r.get("url"): r for r in rebuilt or [] if isinstance(r, dict)}
    changes = []
    for url in sorted(set(before) | set(after), key=str):
        old, new = before.get(url), after.get(url)
        if old is None or new is None:
            changes.append(f"repository {url} {'added' if old is None else 'removed'}")
        elif old.get("release_sha256") != new.get("release_sha256"):
            changes.append(f"repository {url}: its Release file changed")
        elif old != new:
            changes.append(f"repository {url} differs")
    return changes


def _package_changes(original: Any, rebuilt: Any) -> list[str]:
    def versions(packages: Any) -> dict[str, str]:
        return {
            f"{p.get('name')}:{p.get('arch')}": f"{p.get('version')} ({_short(p.get('sha256'))})"
            for p in packages or []
            if isinstance(p, dict)
        }

    differing = _mapping_changes(versions(original), versions(rebuilt))
    if not differing:
        return []
    named = ", ".join(differing[:LISTED_CHANGES])
    more = f" and {len(differing) - LISTED_CHANGES} more" if len(differing) > LISTED_CHANGES else ""
    return [f"{len(differing)} package(s) differ: {named}{more}"]


def _mapping_changes(original: Any, rebuilt: Any) -> list[str]:
    before = original if isinstance(original, dict) else {}
    after = rebuilt if isinstance(rebuilt, dict) else {}
    return [
        f"{key} {before.get(key, 'absent')} → {after.get(key, 'absent')}"
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]


# --- the verdict and the words ---------------------------------------------------------------


def _verdict(rows: list[dict[str, Any]], inputs: dict[str, Any]) -> str:
    if inputs["changes"]:
        return "inputs_changed"
    return "reproducible" if rows and all(row["identical"] for row in rows) else "not_reproducible"


def summary(
    rows: list[dict[str, Any]],
    inputs: dict[str, Any],
    verdict: str,
    notes: list[str],
    reports: dict[str, str],
) -> str:
    """One paragraph: the verdict, what differs, the inputs, diffoscope."""
    same = sum(1 for row in rows if row["identical"])
    words = [f"{same} of {len(rows)} artifacts are identical."]
    for row in rows:
        if row["identical"]:
            continue
        sizes = row["size"]
        if row["original_sha256"] is None:
            words.append(f"{row['name']} is only in the rebuild.")
        elif row["rebuilt_sha256"] is None:
            words.append(f"{row['name']} was not rebuilt.")
        else:
            where = row["first_difference"]
            at = f", first difference at byte {where}" if where is not None else ""
            words.append(f"{row['name']} differs ({sizes[0]} vs {sizes[1]} bytes{at}).")
    if verdict == "inputs_changed":
        words.append(
            "The rebuild did not use the same inputs, so it says nothing about "
            "reproducibility: " + "; ".join(inputs["changes"]) + "."
        )
    elif not inputs["compared"]:
        words.append("There is no build plan on both sides: the inputs were not compared.")
    else:
        words.append("Both builds used the same inputs (their build plans agree).")
    words += [f"Note: {note}." for note in notes]
    if reports:
        installed = any(text != NOT_INSTALLED for text in reports.values())
        words.append(
            "diffoscope's report of each difference is under diffoscope."
            if installed
            else "diffoscope is not installed on the build host: no report of the differences."
        )
    verdicts = {
        "reproducible": "Reproducible: the rebuild is byte for byte the original.",
        "not_reproducible": "Not reproducible: the same inputs gave different bytes.",
        "inputs_changed": "Inconclusive: the inputs changed since the original build.",
    }
    return " ".join([verdicts[verdict], *words])


# --- diffoscope --------------------------------------------------------------------------------


def diffoscope_command() -> str | None:
    """diffoscope on PATH, or beside this Python (a virtualenv's bin, which a host started as
    ``.venv/bin/python -m builders.agent`` does not have on its PATH)."""
    found = shutil.which("diffoscope")
    if found:
        return found
    beside = Path(sys.executable).parent / "diffoscope"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def _reports(
    fetched: dict[str, tuple[Path, Path]], work_dir: Path, log: Callable[[str], None]
) -> dict[str, str]:
    command = diffoscope_command()
    reports: dict[str, str] = {}
    budget = DIFFOSCOPE_TOTAL
    for name, (original, rebuilt) in fetched.items():
        if command is None:
            reports[name] = NOT_INSTALLED
            continue
        text = diffoscope(command, original, rebuilt, work_dir)
        kept = cut(text, min(DIFFOSCOPE_KEPT, max(budget, 0)))
        budget -= len(kept)
        reports[name] = kept
        log(f"I: kiln: diffoscope {name}:")
        for line in text.splitlines()[:200]:
            log(f"  {line}")
    return reports


def diffoscope(command: str, original: Path, rebuilt: Path, work_dir: Path) -> str:
    """diffoscope's text report of two files (its scratch space in ``work_dir``)."""
    scratch = work_dir / "diffoscope-tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    argv = [
        command,
        "--text",
        "-",
        "--max-text-report-size",
        str(DIFFOSCOPE_REPORT_BYTES),
        "--no-progress",
        str(original),
        str(rebuilt),
    ]
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=DIFFOSCOPE_SECONDS,
            env={**os.environ, "TMPDIR": str(scratch)},
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"diffoscope did not finish within {DIFFOSCOPE_SECONDS} s"
    except OSError as exc:
        return f"diffoscope could not run: {exc}"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if done.returncode == 0:
        return "diffoscope finds no difference"
    if done.returncode == 1 and done.stdout.strip():
        return done.stdout.replace(str(original), "original").replace(str(rebuilt), "rebuilt")
    return f"diffoscope failed (status {done.returncode}): {done.stderr.strip()[-500:]}"


def cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} more characters cut]"
