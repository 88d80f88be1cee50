"""The version of a requested Go module, as ``go list`` would give it and upstream Cachito
computes it from the repository's tags (https://go.dev/ref/mod#pseudo-versions):

- the highest semantic-version tag on the commit whose major version matches the module's
  (``/vN`` at the end of its path, else v1 then v0), ``<subpath>/vX.Y.Z`` for a module below
  the repository's root: ``v1.2.3``;
- else a pseudo-version on the highest such tag before the commit: ``v1.2.4-0.<time>-<hash>``
  (``v1.2.3-pre.0.<time>-<hash>`` after a pre-release);
- else ``vN.0.0-<time>-<hash>`` (N the major version, 0 without one);

with ``<time>`` the commit time (UTC, ``yyyymmddhhmmss``) and ``<hash>`` the commit's first 12
hex digits. This reads the repository's git metadata in the source tree (``app/.git``), read
only. A tree without it (or a commit git does not know) gets ``v0.0.0-00010101000000-<hash>``:
Go's zero time, since the commit time is unknown.
"""

from __future__ import annotations

import datetime
import re
import subprocess
from pathlib import Path

_SEMVER = re.compile(
    r"^(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
_MAJOR_IN_PATH = re.compile(r"/v(?P<major>\d+)$")
ZERO_TIME = "00010101000000"

SemVer = tuple[int, int, int, str | None]


def parse_semver(text: str) -> SemVer | None:
    """``1.2.3-rc.1`` → (1, 2, 3, "rc.1"); build metadata dropped; None if not semver."""
    match = _SEMVER.match(text)
    if not match:
        return None
    return int(match["major"]), int(match["minor"]), int(match["patch"]), match["pre"]


def _order(version: SemVer) -> tuple[int, int, int, tuple[tuple[int, int, str], ...]]:
    """Semantic version precedence: a release sorts above its pre-releases."""
    major, minor, patch, pre = version
    if pre is None:
        return major, minor, patch, ((2, 0, ""),)
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return major, minor, patch, parts


def _git(repository: Path, *args: str) -> list[str] | None:
    try:
        done = subprocess.run(
            ["git", "-c", "safe.directory=*", "-C", str(repository), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.split() if done.returncode == 0 else None


def _highest_tag(tags: list[str], major: int, subpath: str | None) -> tuple[str, SemVer] | None:
    prefix = f"{subpath}/v" if subpath else "v"
    best: tuple[str, SemVer] | None = None
    for tag in tags:
        if not tag.startswith(prefix):
            continue
        version = parse_semver(tag[len(prefix) :])
        if version is None or version[0] != major:
            continue
        if best is None or _order(version) > _order(best[1]):
            best = (tag[len(prefix) - 1 :], version)
    return best


def pseudo_version(stamp: str, commit: str, base: SemVer | None, major: int | None) -> str:
    short = commit[:12]
    if base is None:
        return f"v{major or 0}.0.0-{stamp}-{short}"
    major_, minor, patch, pre = base
    if pre:
        return f"v{major_}.{minor}.{patch}-{pre}.0.{stamp}-{short}"
    return f"v{major_}.{minor}.{patch + 1}-0.{stamp}-{short}"


def module_version(repository: Path, commit: str, module: str, subpath: str = ".") -> str:
    """The version of ``module`` at ``commit`` of the repository checked out in
    ``repository`` (the module lives in ``subpath``)."""
    in_path = _MAJOR_IN_PATH.search(module)
    major = int(in_path["major"]) if in_path else None
    majors = (major,) if major is not None else (1, 0)
    sub = None if subpath in ("", ".") else subpath.strip("/")
    if not (repository / ".git").exists():
        return pseudo_version(ZERO_TIME, commit, None, major)
    on_commit = _git(repository, "tag", "--points-at", commit) or []
    for candidate in majors:
        if found := _highest_tag(on_commit, candidate, sub):
            return found[0]
    times = _git(repository, "log", "-1", "--format=%ct", commit)
    if not times:
        return pseudo_version(ZERO_TIME, commit, None, major)
    when = datetime.datetime.fromtimestamp(int(times[0]), datetime.UTC)
    stamp = when.strftime("%Y%m%d%H%M%S")
    reachable = (
        _git(
            repository,
            "for-each-ref",
            "--format=%(refname:lstrip=2)",
            "refs/tags",
            "--merged",
            commit,
        )
        or []
    )
    for candidate in majors:
        if found := _highest_tag(reachable, candidate, sub):
            return pseudo_version(stamp, commit, found[1], candidate)
    return pseudo_version(stamp, commit, None, major)
