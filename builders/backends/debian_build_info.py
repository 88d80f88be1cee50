"""Build metadata of a kiln-debian build: ``packages.json`` and ``build-plan.json``.

The customize script (debian_script.py) writes, before mmdebstrap's clean-up removes the package
lists, into ``<stage>/build-info``: the image's installed packages (``dpkg-query``) and the
uncompressed Packages indexes apt used, each with its repository URI. This module matches the
two (name, version, architecture) and writes both JSON files into ``ctx.out_dir``, sorted so
that equal builds give equal bytes. The format is in docs/recipes.md ("Build metadata").
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import itertools
import json
import os
import platform
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from builders import sbom
from builders.backends.base import (
    BUILD_PLAN_JSON,
    PACKAGES_JSON,
    Artifact,
    BuildContext,
    BuildError,
)
from builders.backends.debian_recipe import Recipe, recipe_document
from builders.backends.debian_repos import Repository
from builders.backends.tool_process import sleep_unless_stopped

INFO_DIR = "build-info"  # under the build's staging directory
INSTALLED_FILE = "installed.tsv"  # dpkg-query: name, version, architecture, status
LISTS_DIR = "lists"  # the Packages indexes, uncompressed, named 1, 2, ...
SOURCES_FILE = "sources.tsv"  # list number, repository URI
PACKAGES_FILE = "packages.json"
BUILD_PLAN_FILE = "build-plan.json"
BUILD_PLAN_FORMAT = "kiln-build-plan/1"
VERSION_COMMANDS: dict[str, tuple[str, ...]] = {
    "mmdebstrap": ("mmdebstrap", "--version"),
    "apt": ("apt-get", "--version"),
    "dpkg": ("dpkg", "--version"),
    "mksquashfs": ("mksquashfs", "-version"),
    "mkfs.ext4": ("mkfs.ext4", "-V"),
    "mkfs.vfat": ("dpkg-query", "-W", "-f", "dosfstools ${Version}", "dosfstools"),
    "sfdisk": ("sfdisk", "--version"),
    "mtools": ("mcopy", "--version"),
    "qemu-img": ("qemu-img", "--version"),
}
BUILD_TOOLS = ("mmdebstrap", "apt", "dpkg", "mksquashfs")
DISK_TOOLS = ("mkfs.ext4", "mkfs.vfat", "sfdisk", "mtools", "qemu-img")
_INDEX_FIELDS = ("package", "version", "architecture", "md5sum", "sha256", "filename", "size")
_RELEASE_LIMIT = 64 << 20
_FETCH_ATTEMPTS = 3


@dataclasses.dataclass(frozen=True)
class Installed:
    name: str
    version: str  # the full Debian version, [epoch:]upstream[-revision]
    arch: str


@dataclasses.dataclass(frozen=True)
class IndexEntry:
    md5sum: str
    sha256: str
    filename: str  # relative to the repository URI, e.g. pool/main/b/bash/bash_5.2_amd64.deb
    size: int | None
    repository: str  # the repository URI, as apt lists it


@dataclasses.dataclass(frozen=True)
class Sources:
    """The Release files Kiln fetched just before mmdebstrap: the mirror's and each extra
    repository's (raw bytes, for their sha256 and the codename)."""

    mirror: str
    release: bytes
    repositories: tuple[tuple[Repository, bytes], ...]


# --- reading what the customize script collected --------------------------------------------


def split_version(version: str) -> tuple[str, str, str]:
    """``[epoch:]upstream[-revision]`` to (epoch, upstream, revision); "" for the missing
    parts (no epoch; no revision: a native package)."""
    epoch, colon, rest = version.partition(":")
    if not colon:
        epoch, rest = "", version
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        upstream, revision = rest, ""
    return epoch, upstream, revision


def read_installed(text: str) -> list[Installed]:
    """dpkg-query lines (name TAB version TAB arch TAB status): the installed packages, sorted."""
    packages = set()
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[3].split()[-1:] == ["installed"]:
            packages.add(Installed(parts[0], parts[1], parts[2]))
    return sorted(packages, key=lambda p: (p.name, p.arch, p.version))


def read_index(
    lines: Iterable[str], wanted: set[str], repository: str
) -> Iterator[tuple[tuple[str, str, str], IndexEntry]]:
    """The stanzas of a Packages index (its lines) whose package is in ``wanted``, keyed by
    (name, version, architecture). Streams: a suite's index is tens of MB."""
    stanza: dict[str, str] = {}
    for line in itertools.chain(lines, [""]):
        if line.strip():
            if line[0] not in " \t":
                name, _, value = line.partition(":")
                name = name.lower()
                if name in _INDEX_FIELDS:
                    stanza[name] = value.strip()
            continue
        if stanza.get("package") in wanted:
            size = stanza.get("size", "")
            key = (stanza["package"], stanza.get("version", ""), stanza.get("architecture", ""))
            yield (
                key,
                IndexEntry(
                    md5sum=stanza.get("md5sum", ""),
                    sha256=stanza.get("sha256", ""),
                    filename=stanza.get("filename", ""),
                    size=int(size) if size.isdigit() else None,
                    repository=repository,
                ),
            )
        stanza = {}


def collect(info_dir: Path) -> list[tuple[Installed, IndexEntry | None]]:
    """Each installed package with its index entry (None if no index apt used has it: a
    package installed from a file, or from a source a customize command removed)."""
    installed_file = info_dir / INSTALLED_FILE
    if not installed_file.is_file():
        raise BuildError(f"build metadata: the customize script wrote no {installed_file}")
    installed = read_installed(installed_file.read_text(encoding="utf-8", errors="replace"))
    wanted = {package.name for package in installed}
    index: dict[tuple[str, str, str], IndexEntry] = {}
    sources = info_dir / SOURCES_FILE
    lines = sources.read_text().splitlines() if sources.is_file() else []
    for number, _, repository in (line.partition("\t") for line in lines):
        with (info_dir / LISTS_DIR / number).open(encoding="utf-8", errors="replace") as handle:
            for key, entry in read_index(handle, wanted, repository):
                index.setdefault(key, entry)  # the first source apt lists wins
    return [(p, index.get((p.name, p.version, p.arch))) for p in installed]


# --- the two files ----------------------------------------------------------------------------


def packages_json(packages: Sequence[tuple[Installed, IndexEntry | None]]) -> list[dict[str, str]]:
    result = []
    for package, entry in packages:
        epoch, upstream, revision = split_version(package.version)
        result.append(
            {
                "type": "deb",
                "name": package.name,
                "version": upstream,
                "release": revision,
                "epoch": epoch,
                "arch": package.arch,
                "sigmd5": entry.md5sum if entry else "",
                "sha256": entry.sha256 if entry else "",
            }
        )
    return result


def repository_facts(sources: Sources) -> list[dict[str, Any]]:
    """Each extra repository of a build plan, with the sha256 of its key and its Release."""
    return [
        {
            "url": repository.url,
            "suite": repository.suite,
            "components": list(repository.components),
            "key_sha256": _sha256(repository.key.encode()) if repository.key else None,
            "release_sha256": _sha256(release),
        }
        for repository, release in sources.repositories
    ]


def build_plan(
    ctx: BuildContext,
    recipe: Recipe,
    sources: Sources,
    debarch: str,
    packages: Sequence[tuple[Installed, IndexEntry | None]],
    tools: Mapping[str, str],
) -> dict[str, Any]:
    repositories = repository_facts(sources)
    return {
        "format": BUILD_PLAN_FORMAT,
        "recipe": recipe_document(ctx.recipe_dir, ctx.template),
        "template_dictionary": dict(sorted(ctx.template.items())),
        "mirror": sources.mirror,
        "suite": recipe.suite,
        "codename": release_field(sources.release, "Codename"),
        "release_sha256": _sha256(sources.release),
        "architecture": debarch,
        "source_date_epoch": ctx.source_date_epoch,
        "repositories": repositories,
        "packages": [
            {
                "name": package.name,
                "version": package.version,
                "arch": package.arch,
                "sha256": entry.sha256 if entry else "",
                "filename": entry.filename if entry else "",
                "size": entry.size if entry else None,
                "repository": entry.repository if entry else "",
            }
            for package, entry in packages
        ],
        "tools": dict(tools),
        "inputs": recipe_inputs(ctx.recipe_dir),
    }


def write_artifacts(
    ctx: BuildContext,
    recipe: Recipe,
    sources: Sources,
    debarch: str,
    info_dir: Path,
    tools: Mapping[str, str],
) -> list[Artifact]:
    """packages.json, build-plan.json and the SBOMs (builders/sbom.py) in ctx.out_dir, after
    the image's artifacts: the SBOMs hash the image files found there."""
    files = sbom.image_files(ctx, skip=(PACKAGES_FILE, BUILD_PLAN_FILE))
    packages = collect(info_dir)
    ctx.log(f"I: kiln: {PACKAGES_FILE}: {len(packages)} installed packages")
    missing = [package.name for package, entry in packages if entry is None]
    if missing:
        ctx.log(f"W: kiln: not in any package index (no checksums): {', '.join(missing)}")
    plan = build_plan(ctx, recipe, sources, debarch, packages, tools)
    listed = packages_json(packages)
    artifacts = []
    for name, data, kind in (
        (PACKAGES_FILE, listed, PACKAGES_JSON),
        (BUILD_PLAN_FILE, plan, BUILD_PLAN_JSON),
    ):
        target = ctx.out_dir / name
        target.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
        target.chmod(0o644)
        artifacts.append(Artifact(path=target, type=kind))
    origin = release_field(sources.release, "Origin").lower()
    described = sbom.describe(
        json.loads(json.dumps(plan, default=str)),  # as build-plan.json holds it
        listed,
        files,
        ctx.image_root_archive_name,
        release_version=release_field(sources.release, "Version"),
        namespace="ubuntu" if origin == "ubuntu" else "debian",
    )
    return artifacts + sbom.write(ctx.out_dir, described, ctx.log)


def recipe_inputs(recipe_dir: Path) -> list[dict[str, str]]:
    """Every regular file of the recipe archive with its sha256, sorted by path."""
    inputs = []
    for top, dirs, files in os.walk(recipe_dir):
        dirs.sort()
        for name in files:
            path = Path(top) / name
            if path.is_file() and not path.is_symlink():
                relative = path.relative_to(recipe_dir).as_posix()
                inputs.append({"path": relative, "sha256": _sha256(path.read_bytes())})
    return sorted(inputs, key=lambda item: item["path"])


def tool_versions(names: Iterable[str], env: Mapping[str, str]) -> dict[str, str]:
    """The first line each tool prints about its version ("unknown" if it prints none)."""
    versions = {}
    for name in names:
        try:
            done = subprocess.run(
                VERSION_COMMANDS[name],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                env=dict(env),
                timeout=30,
                check=False,
            )
            lines = (done.stdout + "\n" + done.stderr).splitlines()
        except (OSError, subprocess.TimeoutExpired):
            lines = []
        versions[name] = next((line.strip() for line in lines if line.strip()), "unknown")
    versions["kiln-agent"] = f"python {platform.python_version()}"
    return versions


# --- the Release files ------------------------------------------------------------------------


def fetch_sources(recipe: Recipe, mirror: str, ctx: BuildContext) -> Sources:
    release = fetch_release(f"{mirror}/dists/{recipe.suite}/Release", ctx)
    repositories = tuple(
        (repository, fetch_release(repository.release_url, ctx))
        for repository in recipe.repositories
    )
    return Sources(mirror, release, repositories)


def fetch_release(url: str, ctx: BuildContext) -> bytes:
    """A Release file's bytes (a few tries: wait_for_repos has seen the repository answer)."""
    problem = ""
    for attempt in range(_FETCH_ATTEMPTS):
        if attempt:
            sleep_unless_stopped(2.0 * attempt, ctx)
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                data: bytes = response.read(_RELEASE_LIMIT)
                return data
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code} {exc.reason}"
        except (OSError, http.client.HTTPException) as exc:
            problem = str(getattr(exc, "reason", exc))
    raise BuildError(f"cannot fetch {url} for the build plan: {problem}")


def release_field(release: bytes, name: str) -> str:
    found = re.search(rf"^{re.escape(name)}: *(\S*)", release.decode(errors="replace"), re.M)
    return found.group(1) if found else ""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
