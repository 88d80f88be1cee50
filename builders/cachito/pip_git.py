"""A git dependency of a pip package: the repository fetched at one commit, over http(s)
only, with no hooks, no submodules and no redirects, archived as upstream Cachito does (a
tar.gz of the checkout, ``.git`` included, under ``app/``) but reproducibly (sorted entries,
the commit's time, no owners). git connects only to the addresses the address guard vetted
(``http.curloptResolve``), so a second DNS answer cannot lead it elsewhere."""

from __future__ import annotations

import gzip
import ipaddress
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import urllib.parse
from pathlib import Path

from builders.cachito.errors import InvalidRequestData, RepositoryAccessError, ValidationError
from chalicelib.adapters import web_fetch

GIT_TIMEOUT = 900
#: no protocol but http(s), no hooks, no redirects (a redirect could lead past the guard)
SAFE_CONFIG = (
    "-c", "protocol.allow=never",
    "-c", "protocol.http.allow=always",
    "-c", "protocol.https.allow=always",
    "-c", "http.followRedirects=false",
    "-c", "core.hooksPath=/dev/null",
    "-c", "credential.helper=",
    "-c", "submodule.recurse=false",
    "-c", "advice.detachedHead=false",
)  # fmt: skip


def pinned_resolve(url: str, allow: web_fetch.AllowList) -> list[str]:
    """``-c http.curloptResolve=<host>:<port>:<addresses>`` for ``url``: its host resolved
    once, each address passed through the guard (ValidationError if one is refused)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:  # an address already: nothing to resolve
        return []
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise RepositoryAccessError(f"Cannot resolve {host} of {url}: {exc}") from None
    literals: list[str] = []
    for *_info, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]
        literal = f"[{address}]" if ":" in address else address
        if literal not in literals:
            literals.append(literal)
    for literal in literals:
        try:
            web_fetch.check_url(f"{parts.scheme}://{literal}:{port}/", allow)
        except web_fetch.FetchRefused as exc:
            raise ValidationError(f"Refusing to fetch {url}: {host} resolves to {exc}") from None
    return ["-c", f"http.curloptResolve={host}:{port}:{','.join(literals)}"]


def _git(repo: Path, *args: str, home: Path) -> str:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
    }
    try:
        done = subprocess.run(
            ["git", *SAFE_CONFIG, "-C", str(repo), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RepositoryAccessError(f"git {args[0]} took longer than {GIT_TIMEOUT} s") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise subprocess.CalledProcessError(
            done.returncode, args[0], output=lines[-1] if lines else ""
        )
    return done.stdout.strip()


def _tree_size(root: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink():
                total += path.stat().st_size
    return total


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
    pin = pinned_resolve(url, allow)
    work = Path(tempfile.mkdtemp(prefix="git-", dir=scratch))
    checkout = work / "app"
    try:
        _git(work, "init", "-q", "--template=", str(checkout), home=work)
        try:
            _git(checkout, *pin, "fetch", "-q", "--depth=1", "--no-tags", "--", url, ref, home=work)
        except subprocess.CalledProcessError:
            # a server that refuses a commit by its id: every branch, then look for it
            try:
                _git(
                    checkout,
                    *pin,
                    "fetch",
                    "-q",
                    "--no-tags",
                    "--",
                    url,
                    "+refs/heads/*:refs/remotes/origin/*",
                    home=work,
                )
            except subprocess.CalledProcessError as exc:
                raise RepositoryAccessError(
                    f"Failed to fetch the git repository {url}: {exc.output}"
                ) from None
            try:
                _git(checkout, "cat-file", "-e", f"{ref}^{{commit}}", home=work)
            except subprocess.CalledProcessError:
                raise InvalidRequestData(
                    f"The commit {ref} is not in the git repository {url}"
                ) from None
        try:
            _git(checkout, "checkout", "-q", "--detach", ref, home=work)
            mtime = int(_git(checkout, "log", "-1", "--format=%ct", ref, home=work))
        except subprocess.CalledProcessError as exc:
            raise RepositoryAccessError(
                f"Failed to check out {url} at {ref}: {exc.output}"
            ) from None
        if _tree_size(checkout) > max_source_bytes:
            raise ValidationError(
                f"The git dependency {url} at {ref} is larger than {max_source_bytes} bytes"
            )
        _write_archive(checkout, target, mtime, max_bytes, too_big)
    finally:
        shutil.rmtree(work, ignore_errors=True)
