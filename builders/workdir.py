"""A job's private work directory: never deleted while anything is still mounted inside it."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
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


def _working_in(proc: Path, prefix: str) -> bool:
    """Whether the process at ``proc`` (/proc/<pid>) works inside ``prefix``: its root (a
    chroot), its cwd, or a path in its arguments (a tool given its target there)."""
    try:
        links = [os.readlink(proc / "root"), os.readlink(proc / "cwd")]
        args = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:  # gone, or a zombie
        return False
    inside = [p for p in links if p == prefix or p.startswith(prefix + "/")]
    return bool(inside) or any(prefix + "/" in arg or arg.endswith(prefix) for arg in args)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def kill_working_in(root: Path, wait_seconds: float = 10) -> list[int]:
    """SIGKILL every process working inside ``root`` (see _working_in): the tools a build
    host killed mid-build left running in their own sessions, still writing there; waits
    until they are gone. Their pids."""
    prefix, me = str(root.resolve()), os.getpid()
    found = [
        int(proc.name)
        for proc in Path("/proc").glob("[0-9]*")
        if int(proc.name) != me and _working_in(proc, prefix)
    ]
    for pid in found:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + wait_seconds
    while any(_alive(pid) for pid in found) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def unmount_below(root: Path) -> list[str]:
    """Unmount (lazily, deepest first) whatever is mounted at or inside ``root``, as a tool
    killed mid-build leaves it; the mount points."""
    left = mounts_below(root)
    for point in reversed(left):
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)
    return left


def remove(root: Path) -> None:
    """Delete ``root``; refuse (leaving it for an operator) if something is mounted inside."""
    left = mounts_below(root)
    if left:
        raise RuntimeError(f"not removing {root}: still mounted inside it: {', '.join(left)}")
    shutil.rmtree(root, ignore_errors=True)
