"""A git dependency of a pip package: the repository fetched at one commit
(builders/cachito/git_fetch.py: http(s) only, no hooks, no submodules, no redirects, git pinned
to the addresses the address guard vetted), archived as upstream Cachito does (a tar.gz of the
checkout, ``.git`` included, under ``app/``) but reproducibly (sorted entries, the commit's
time, no owners)."""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from builders.cachito.errors import RepositoryAccessError, ValidationError
from builders.cachito.git_fetch import GitFailed, fetch_commit
from chalicelib.adapters import web_fetch

GIT_TIMEOUT = 900  # seconds, for each git command


def _write_archive(checkout: Path, target: Path, mtime: int, max_bytes: int, too_big: str) -> None:
    """A reproducible tar.gz of ``checkout`` under ``app/``; ValidationError(``too_big``) once
    it passes ``max_bytes``."""
    with (
        target.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for folder, dirs, files in os.walk(checkout):
            dirs.sort()
            for name in [*sorted(dirs), *sorted(files)]:
                path = Path(folder, name)
                info = tar.gettarinfo(str(path), arcname=f"app/{path.relative_to(checkout)}")
                info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "", ""
                if info.isfile():
                    with path.open("rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
            if raw.tell() > max_bytes:
                raise ValidationError(too_big)


def archive_commit(
    url: str,
    ref: str,
    target: Path,
    scratch: Path,
    max_bytes: int,
    too_big: str,
    max_source_bytes: int,
    allow: web_fetch.AllowList,
) -> None:
    """Fetch ``url`` at the commit ``ref`` and archive it at ``target`` (at most ``max_bytes``,
    else ValidationError(``too_big``); the checkout at most ``max_source_bytes``)."""
    work = Path(tempfile.mkdtemp(prefix="git-", dir=scratch))
    checkout = work / "app"
    try:
        git = fetch_commit(url, ref, checkout, allow, max_source_bytes, timeout=GIT_TIMEOUT)
        try:
            mtime = int(git.run(checkout, "log", "-1", "--format=%ct", ref))
        except GitFailed as exc:
            raise RepositoryAccessError(f"Failed to check out {url} at {ref}: {exc}") from None
        _write_archive(checkout, target, mtime, max_bytes, too_big)
    finally:
        shutil.rmtree(work, ignore_errors=True)
