"""git for a Cachito request: a repository (and its submodules) fetched at a commit, each
URL through the address guard. The one place Kiln fetches git: the request's own repository
(builders/cachito/source.py) and its git dependencies (``fetch_commit``: pip's, npm's, yarn's).

The guard is Glance's web-download one (chalicelib/adapters/web_fetch.py): http or https only,
no credentials, no internal address unless the operator's allow list covers it. git then
connects to exactly the addresses that were checked (``http.curloptResolve``, which reaches
submodule clones too), so DNS cannot swap them, and follows no redirects. git runs with no
hooks, prompts, credential helpers, proxies, ``.netrc`` or user and system configuration; a
command is stopped once the tree it fills grows past its bound, when the job is interrupted or
(for a dependency) when it runs too long.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import signal
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from packageurl import PackageURL

from builders.cachito.errors import InvalidRequestData, RepositoryAccessError, ValidationError
from chalicelib import cachito_purl
from chalicelib.adapters.web_fetch import AllowList, FetchRefused, check_url

SUBMODULE_MANAGER = "git-submodule"
CLONE_FAILED = "Failed cloning the Git repository"
SUBMODULES_FAILED = "Updating the Git submodule(s) failed"
_POLL_SECONDS = 1.0
#: every git command: no hooks, prompts, credential helpers, redirects; http(s) only
_GIT_CONFIG = (
    "core.hooksPath=/dev/null",
    "core.askPass=",
    "core.fsmonitor=false",
    "credential.helper=",
    "protocol.allow=never",
    "protocol.http.allow=always",
    "protocol.https.allow=always",
    "http.followRedirects=false",
    "http.lowSpeedLimit=1000",
    "http.lowSpeedTime=60",
    "submodule.recurse=false",
    "advice.detachedHead=false",
    "init.defaultBranch=main",
)


@dataclasses.dataclass(frozen=True)
class _Submodule:
    name: str
    path: str  # inside its parent repository
    url: str  # absolute
    commit: str


def checkout_failed(ref: str) -> str:
    """Upstream Cachito's words for a commit the repository does not have."""
    return (
        "Failed on checking out the Git repository. Please verify the supplied reference "
        f'of "{ref}" is valid.'
    )


# -- the address guard ---------------------------------------------------------------------
def refuse_url(url: str, allow: AllowList, what: str) -> None:
    """ValidationError if Kiln may not fetch ``url`` (scheme, form, the addresses it has now)."""
    scheme = urllib.parse.urlsplit(url).scheme.lower() if isinstance(url, str) else ""
    if scheme not in ("http", "https"):
        raise ValidationError(f"{what} {url!r} cannot be fetched: only http and https are allowed")
    if not (urllib.parse.urlsplit(url).hostname or "").isascii():  # git's IDNA may differ
        raise ValidationError(f"{what} {url!r} cannot be fetched: spell its host in ASCII")
    try:
        check_url(url, allow)
    except FetchRefused as exc:
        raise ValidationError(f"{what} cannot be fetched: {exc}") from None


def pin_url(url: str, allow: AllowList, what: str) -> str | None:
    """``<host>:<port>:<addresses>`` for ``http.curloptResolve``: the host's addresses, each
    checked against the guard; None for an IP literal (nothing to resolve)."""
    refuse_url(url, allow, what)
    parts = urllib.parse.urlsplit(url)
    host, scheme = parts.hostname or "", parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise RepositoryAccessError(f"{CLONE_FAILED}: cannot resolve {host!r}: {exc}") from None
    addresses = list(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))
    literals = [f"[{a}]" if ":" in a else a for a in addresses]
    for literal in literals:  # exactly what git will connect to
        try:
            check_url(f"{scheme}://{literal}:{port}/", allow)
        except FetchRefused as exc:
            raise ValidationError(f"{what} cannot be fetched: {url!r}: {exc}") from None
    return f"{host}:{port}:{','.join(literals)}"


# -- git -------------------------------------------------------------------------------------
class GitFailed(Exception):
    """A git command failed; the text is the end of what it said."""


def _git_env() -> dict[str, str]:
    keep = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GIT_")
        and not name.lower().endswith("_proxy")
        and name not in ("SSH_ASKPASS", "GCM_INTERACTIVE", "XDG_CONFIG_HOME")
    }
    return {
        **keep,
        "HOME": os.devnull,  # no ~/.netrc (curl reads it), no ~/.config/git
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_LFS_SKIP_SMUDGE": "1",
    }


class Git:
    """Runs git for one fetch, stopping it when ``root`` grows past ``max_bytes`` (a
    ValidationError naming ``what``), when the job is interrupted or when one command runs
    longer than ``timeout`` seconds (GitFailed)."""

    def __init__(
        self,
        root: Path,
        max_bytes: int,
        check_interrupted: Callable[[], None],
        *,
        timeout: float | None = None,
        what: str = "The repository",
    ) -> None:
        self.root, self.max_bytes, self.timeout, self.what = root, max_bytes, timeout, what
        self._check_interrupted = check_interrupted
        self._env = _git_env()

    def run(self, cwd: Path, *args: str, pins: Iterable[str | None] = ()) -> str:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        command = ["git"]
        for setting in (*_GIT_CONFIG, *(f"http.curloptResolve={p}" for p in pins if p)):
            command += ["-c", setting]
        process = subprocess.Popen(
            [*command, *args],
            cwd=cwd,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,  # git's helpers die with it
        )
        while True:
            try:
                out, err = process.communicate(timeout=_POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                try:
                    self._check_interrupted()
                    self.check_size()
                    if deadline is not None and time.monotonic() > deadline:
                        raise GitFailed(f"git {args[0]} took longer than {self.timeout:g} s")
                except BaseException:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.communicate()
                    raise
        if process.returncode != 0:
            said = [line.strip() for line in err.splitlines() if line.strip()]
            raise GitFailed("; ".join(said[-2:]) or f"git {args[0]} exited {process.returncode}")
        return out

    def size(self) -> int:
        total = 0
        for directory, _dirs, files in os.walk(self.root):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(directory, name)).st_size
        return total

    def check_size(self) -> None:
        if self.size() > self.max_bytes:
            raise ValidationError(
                f"{self.what} is larger than {self.max_bytes} bytes, the most a request may fetch"
            )


def clone(git: Git, repo: str, ref: str, allow: AllowList, history: bool, target: Path) -> None:
    """``repo`` at ``ref``, checked out (detached) in ``target``: only that commit, or with
    ``history`` every branch and tag too. A server that refuses to serve a commit by its hash
    gets a fetch of every branch and tag instead."""
    pin = pin_url(repo, allow, "The repository")
    try:
        _fetch(git, target, repo, ref, pin, history)
    except GitFailed as exc:
        raise RepositoryAccessError(f"{CLONE_FAILED}: {exc}") from None
    if not has_commit(git, target, ref):
        raise InvalidRequestData(checkout_failed(ref))
    try:
        git.run(target, "checkout", "-q", "--detach", ref)
    except GitFailed:
        raise InvalidRequestData(checkout_failed(ref)) from None


def fetch_commit(
    url: str,
    commit: str,
    target: Path,
    allow: AllowList,
    max_bytes: int,
    *,
    timeout: float | None = None,
    check_interrupted: Callable[[], None] = lambda: None,
) -> Git:
    """A git dependency: ``url`` at ``commit`` checked out (detached, no submodules) in
    ``target`` (created), as ``clone`` fetches, ``.git`` and tree together at most
    ``max_bytes``. The runner is returned for more commands there (``git archive``, ``git
    log``). ValidationError for a URL or address the guard refuses or a fetch too large,
    InvalidRequestData for a commit the repository lacks, RepositoryAccessError else."""
    target.mkdir(parents=True, exist_ok=True)
    what = f"The git dependency {url} at {commit}"
    git = Git(target, max_bytes, check_interrupted, timeout=timeout, what=what)
    pin = pin_url(url, allow, "The git dependency")
    try:
        _fetch(git, target, url, commit, pin, history=False)
    except GitFailed as exc:
        raise RepositoryAccessError(f"Failed to fetch the git repository {url}: {exc}") from None
    if not has_commit(git, target, commit):
        raise InvalidRequestData(f"The commit {commit} is not in the git repository {url}")
    try:
        git.run(target, "checkout", "-q", "--detach", commit)
    except GitFailed as exc:
        raise RepositoryAccessError(f"Failed to check out {url} at {commit}: {exc}") from None
    git.check_size()
    return git


def _fetch(git: Git, target: Path, repo: str, ref: str, pin: str | None, history: bool) -> None:
    git.run(target, "init", "-q", "--template=")
    git.run(target, "remote", "add", "origin", repo)
    everything = ("fetch", "-q", "--tags", repo, "+refs/heads/*:refs/remotes/origin/*")
    if history:
        git.run(target, *everything, pins=[pin])
        if not has_commit(git, target, ref):
            with contextlib.suppress(GitFailed):  # a commit on no branch or tag
                git.run(target, "fetch", "-q", repo, ref, pins=[pin])
    else:
        try:
            git.run(target, "fetch", "-q", "--depth=1", "--no-tags", repo, ref, pins=[pin])
        except GitFailed:  # the server refuses commits (or has no such one): everything
            git.run(target, *everything, pins=[pin])


def has_commit(git: Git, repo: Path, ref: str) -> bool:
    try:
        git.run(repo, "cat-file", "-e", f"{ref}^{{commit}}")
    except GitFailed:
        return False
    return True


# -- submodules -----------------------------------------------------------------------------
def _submodules(git: Git, repo: Path, repo_url: str) -> list[_Submodule]:
    """The submodules the checked-out commit of ``repo`` records: gitlinks in its tree, named
    and located by its committed ``.gitmodules`` (read from git, never through the tree)."""
    listing = git.run(repo, "ls-tree", "-r", "-z", "--full-tree", "HEAD")
    links = {}
    for entry in filter(None, listing.split("\0")):
        facts, _, path = entry.partition("\t")
        mode, kind, sha = facts.split()
        if mode == "160000" and kind == "commit":
            links[path] = sha
    if not links:
        return []
    try:
        raw = git.run(repo, "config", "--blob", "HEAD:.gitmodules", "-z", "--get-regexp", ".")
    except GitFailed:
        raw = ""
    names: dict[str, dict[str, str]] = {}
    for item in filter(None, raw.split("\0")):
        key, _, value = item.partition("\n")
        section, _, rest = key.partition(".")
        name, _, field = rest.rpartition(".")
        if section == "submodule" and name:
            names.setdefault(name, {})[field] = value
    found = []
    for path, sha in sorted(links.items()):
        named = next((n for n, v in names.items() if v.get("path") == path), None)
        if named is None or not names[named].get("url"):
            raise RepositoryAccessError(f"{SUBMODULES_FAILED}: no URL for {path!r} in .gitmodules")
        url = names[named]["url"]
        if url.startswith(("./", "../")):  # relative to the parent repository, as git reads it
            url = urllib.parse.urljoin(repo_url.rstrip("/") + "/", url)
        found.append(_Submodule(named, path, url, sha))
    return found


def update_submodules(git: Git, repo: Path, repo_url: str, allow: AllowList, prefix: str) -> None:
    """Every submodule of the checked-out ``repo``, recursively, at its recorded commit; each
    URL (relative ones resolved against ``repo_url``) guarded and pinned."""
    for sub in _submodules(git, repo, repo_url):
        where = f"The submodule {prefix + sub.path!r}"
        if os.pardir in sub.path.split("/") or not (repo / sub.path).resolve().is_relative_to(
            repo.resolve()
        ):
            raise ValidationError(f"{where} is outside of the repository")
        pin = pin_url(sub.url, allow, where)
        try:
            git.run(repo, "config", f"submodule.{sub.name}.url", sub.url)
            git.run(repo, "config", f"submodule.{sub.name}.update", "checkout")
            git.run(repo, "submodule", "update", "-q", "--init", "--", sub.path, pins=[pin])
        except GitFailed as exc:
            raise RepositoryAccessError(
                f"{SUBMODULES_FAILED}: {prefix + sub.path}: {exc}"
            ) from None
        update_submodules(git, repo / sub.path, sub.url, allow, f"{prefix}{sub.path}/")


def submodule_packages(git: Git, repo: Path, repo_url: str, prefix: str) -> list[dict[str, Any]]:
    """One package per submodule, nested ones too, as upstream Cachito records them: name,
    ``version`` ``<url>#<commit>``, ``path`` from the repository root, no dependencies."""
    packages = []
    for sub in _submodules(git, repo, repo_url):
        path = f"{prefix}{sub.path}"
        packages.append(
            {
                "name": sub.name,
                "type": SUBMODULE_MANAGER,
                "version": f"{sub.url}#{sub.commit}",
                "path": path,
                "purl": cachito_purl.vcs_purl(sub.name, sub.url, sub.commit),
                "canonical_purl": canonical_vcs_purl(sub.url, sub.commit),
                "dependencies": [],
            }
        )
        packages += submodule_packages(git, repo / sub.path, sub.url, f"{path}/")
    return packages


def canonical_vcs_purl(url: str, commit: str) -> str:
    """A repository at a commit as packageurl-python spells it: ``pkg:github/ns/name@sha`` (or
    bitbucket), else ``pkg:generic/<name>@sha?vcs_url=git+<url>@<sha>``."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path.strip("/").removesuffix(".git")
    host = (parts.hostname or "").lower()
    kinds = {"github.com": "github", "bitbucket.org": "bitbucket"}
    if host in kinds and "/" in path:
        namespace, name = path.rsplit("/", 1)
        return str(PackageURL(kinds[host], namespace.lower(), name.lower(), commit).to_string())
    name = path.rsplit("/", 1)[-1] or host
    purl = PackageURL("generic", None, name, commit, {"vcs_url": f"git+{url}@{commit}"})
    return str(purl.to_string())
