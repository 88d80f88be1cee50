"""The application source of a Cachito request: the repository at the commit, in ``app/``.

The repository URL (and each submodule's) passes the address guard, and git runs locked
down (builders/cachito/git_fetch.py); a fetch that grows past ``max_source_bytes`` is stopped.

``git init`` + ``git fetch --depth=1 <url> <commit>`` (a full fetch of branches and tags when
the server refuses a commit, and always with ``include-git-dir``, so the history is there), a
detached checkout; with the ``git-submodule`` manager every submodule, recursively, each URL
guarded. The tree (``.git`` and submodules included) is cached per repository and commit
(``cache.get_source``/``put_source``), so a repository at a commit is fetched once.

Then: symlinks leaving the tree fail the request (or are deleted with
``remove-unsafe-symlinks``), and ``.git`` goes unless ``include-git-dir`` (then it is exactly
``app/.git``).
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from builders.cachito import bundle
from builders.cachito.errors import InvalidRequestData, ValidationError
from builders.cachito.git_fetch import (
    Git,
    checkout_failed,
    clone,
    refuse_url,
    submodule_packages,
    update_submodules,
)
from chalicelib.adapters.web_fetch import AllowList

INCLUDE_GIT_DIR = "include-git-dir"
REMOVE_UNSAFE_SYMLINKS = "remove-unsafe-symlinks"
_SHA = re.compile(r"^[0-9a-f]{40}$")


class SourceCache(Protocol):
    def get_source(self, repo_url: str, commit: str, target: Path) -> bool: ...

    def put_source(self, repo_url: str, commit: str, archive: Path) -> None: ...


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    repo: str
    ref: str
    flags: frozenset[str] = frozenset()
    submodules: bool = False  # "git-submodule" is among the request's package managers
    allow: AllowList = AllowList()
    max_bytes: int = 2 * 1024**3  # the clone, .git and submodules included


@dataclasses.dataclass(frozen=True)
class FetchedSource:
    commit_time: int  # the commit's committer date (epoch seconds)
    packages: list[dict[str, Any]]  # one "git-submodule" package per submodule
    from_cache: bool


def package_path(manager: str, path: Any) -> str:
    """A ``packages.<manager>[].path`` normalized (``.`` for the root); ValidationError for an
    absolute path or one that climbs out with ``..``."""
    text = "." if path is None else path
    if not isinstance(text, str) or os.path.isabs(text):
        raise _path_error(manager)
    normalized = posixpath.normpath(text or ".")
    if os.pardir in normalized.split("/"):
        raise _path_error(manager)
    return normalized


def package_dir(app_dir: Path, manager: str, path: str) -> Path:
    """The directory of a package path in the fetched tree, symlinks resolved; it must stay
    inside the tree."""
    target = (app_dir / package_path(manager, path)).resolve()
    if not target.is_relative_to(app_dir.resolve()):
        raise _path_error(manager)
    return target


def _path_error(manager: str) -> ValidationError:
    return ValidationError(
        f'The "path" values in the "packages.{manager}" value must be to a relative path in '
        "the source repository"
    )


def fetch_source(
    spec: SourceSpec,
    app_dir: Path,
    scratch: Path,
    cache: SourceCache | None,
    log: Callable[[str], None],
    check_interrupted: Callable[[], None] = lambda: None,
) -> FetchedSource:
    """The repository at ``spec.ref`` in ``app_dir`` (created, must not exist or be empty)."""
    if not _SHA.match(spec.ref):
        raise InvalidRequestData(checkout_failed(spec.ref))
    refuse_url(spec.repo, spec.allow, "The repository")
    app_dir.mkdir(parents=True, exist_ok=True)
    scratch.mkdir(parents=True, exist_ok=True)
    git = Git(app_dir, spec.max_bytes, check_interrupted)
    variant = spec.ref + ("-with-submodules" if spec.submodules else "")
    variant += "-with-history" if INCLUDE_GIT_DIR in spec.flags else ""
    from_cache = _restore(cache, spec, variant, app_dir, scratch, git, log)
    if not from_cache:
        history = INCLUDE_GIT_DIR in spec.flags
        clone(git, spec.repo, spec.ref, spec.allow, history, app_dir)
        if spec.submodules:
            update_submodules(git, app_dir, spec.repo, spec.allow, "")
        git.check_size()
        log(f"I: kiln: fetched {spec.repo} at {spec.ref} ({git.size()} bytes)")
        _store(cache, spec.repo, variant, app_dir, scratch, log)
    commit_time = int(git.run(app_dir, "show", "-s", "--format=%ct", "HEAD").strip())
    packages = submodule_packages(git, app_dir, spec.repo, "") if spec.submodules else []
    enforce_sandbox(app_dir, REMOVE_UNSAFE_SYMLINKS in spec.flags, log)
    return FetchedSource(commit_time, packages, from_cache)


# -- the source cache ------------------------------------------------------------------------
def _restore(
    cache: SourceCache | None,
    spec: SourceSpec,
    variant: str,
    app_dir: Path,
    scratch: Path,
    git: Git,
    log: Callable[[str], None],
) -> bool:
    if cache is None:
        return False
    archive = scratch / "source.tar"
    try:
        if not cache.get_source(spec.repo, variant, archive):
            return False
        bundle.extract_tar(archive, app_dir, spec.max_bytes)
        head = git.run(app_dir, "rev-parse", "HEAD").strip()
        if head != spec.ref:
            raise bundle.ArchiveRefused(f"it holds {head}")
        return True
    except Exception as exc:  # an unusable cached copy: fetch afresh
        log(f"W: kiln: the cached source of {spec.repo} at {spec.ref} is unusable: {exc}")
        shutil.rmtree(app_dir, ignore_errors=True)
        app_dir.mkdir(parents=True)
        return False
    finally:
        archive.unlink(missing_ok=True)


def _store(
    cache: SourceCache | None,
    repo_url: str,
    variant: str,
    app_dir: Path,
    scratch: Path,
    log: Callable[[str], None],
) -> None:
    if cache is None:
        return
    archive = scratch / "source.tar"
    try:
        with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
            for entry in sorted(app_dir.iterdir()):
                tar.add(entry, arcname=entry.name)
        cache.put_source(repo_url, variant, archive)
        log(f"I: cache: {repo_url} at {variant} stored in the source cache")
    except Exception as exc:  # the request goes on; the next one fetches again
        log(f"W: kiln: could not store {repo_url} in the source cache: {exc}")
    finally:
        archive.unlink(missing_ok=True)


# -- the tree --------------------------------------------------------------------------------
def finish_tree(app_dir: Path, source: FetchedSource, flags: frozenset[str]) -> None:
    """Once the package managers ran (gomod reads the module's version from git): ``.git``
    goes unless ``include-git-dir``."""
    if INCLUDE_GIT_DIR not in flags:
        _remove_git(app_dir, [p["path"] for p in source.packages])


def _remove_git(app_dir: Path, submodule_paths: list[str]) -> None:
    """``.git`` of the repository and each submodule's ``.git`` file."""
    for path in [".", *submodule_paths]:
        git_path = app_dir / path / ".git"
        if git_path.is_dir() and not git_path.is_symlink():
            shutil.rmtree(git_path)
        elif git_path.exists() or git_path.is_symlink():
            git_path.unlink()


def enforce_sandbox(root: Path, remove_unsafe: bool, log: Callable[[str], None]) -> None:
    """Every symlink under ``root`` must resolve inside it: ValidationError (upstream
    Cachito's words) or, with ``remove_unsafe``, the symlink is deleted."""
    real_root = root.resolve()
    for directory, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = Path(directory, name)
            if not path.is_symlink():
                continue
            if Path(os.path.realpath(path)).is_relative_to(real_root):
                continue
            relative = str(path.relative_to(root))
            if not remove_unsafe:
                raise ValidationError(
                    f"The destination of {relative!r} is outside of cloned repository"
                )
            path.unlink()
            log(
                f"W: kiln: the destination of {relative!r} is outside of cloned repository: removed"
            )
