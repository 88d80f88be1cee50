"""A job's private work directory: never deleted while anything is still mounted inside it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040 ...)."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def mounts_below(root: Path) -> list[str]:
    """Mount points at or inside ``root``, deepest last."""
    if not MOUNTINFO.exists():
        return []
    prefix = str(root.resolve())
    points = [_unescape(line.split()[4]) for line in MOUNTINFO.read_text().splitlines()]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def remove(root: Path) -> None:
    """Delete ``root``; refuse (leaving it for an operator) if something is mounted inside."""
    left = mounts_below(root)
    if left:
        raise RuntimeError(f"not removing {root}: still mounted inside it: {', '.join(left)}")
    shutil.rmtree(root, ignore_errors=True)
