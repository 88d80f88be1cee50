"""Which package mirror a kiln-debian build uses, and whether a suite there fits the recipe.

Pure python (no network): ``builders/backends/debian.py`` fetches the suite's Release file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from builders.backends.base import BuildError
from builders.backends.debian_recipe import Recipe

MIRROR_ENV = "KILN_DEBIAN_MIRROR"


class Suite(Protocol):
    """What a suite's Release file is checked against: a recipe, or one of its repositories."""

    @property
    def suite(self) -> str: ...

    @property
    def components(self) -> tuple[str, ...]: ...


def resolve_mirror(recipe: Recipe, environ: Mapping[str, str], etc_apt: Path) -> str:
    """The recipe's mirror, else $KILN_DEBIAN_MIRROR, else the mirror in the host's apt sources."""
    chosen = recipe.mirror or environ.get(MIRROR_ENV) or host_apt_mirror(etc_apt)
    if not chosen:
        raise BuildError(
            "no Debian package mirror is configured: set 'mirror' in recipe.yaml, "
            f"${MIRROR_ENV} on the build host, or a deb source in the host's apt sources"
        )
    return chosen.rstrip("/")


def host_apt_mirror(etc_apt: Path) -> str | None:
    """The first non-security ``deb`` URI in the host's apt sources (both source formats)."""
    candidates = [etc_apt / "sources.list"]
    list_dir = etc_apt / "sources.list.d"
    if list_dir.is_dir():
        candidates += sorted(list_dir.iterdir())
    for path in candidates:
        if path.suffix == ".sources" and path.is_file():
            entries = _deb822_entries(path.read_text(errors="replace"))
        elif path.name.endswith(".list") and path.is_file():
            entries = _one_line_entries(path.read_text(errors="replace"))
        else:
            continue
        for uri, suites in entries:
            if uri.startswith(("http://", "https://")) and not all(
                suite.endswith(("-security", "/updates")) for suite in suites
            ):
                return uri
    return None


def release_mismatch(release: str, recipe: Suite, debarch: str) -> str | None:
    """Why a suite's Release file (its text) cannot serve the recipe (or one of its
    repositories), or None if it can."""
    fields = dict(re.findall(r"^(Architectures|Components): *(.*)$", release, re.MULTILINE))
    arches = fields.get("Architectures", "").split()
    if arches and debarch not in arches:
        return f"suite {recipe.suite} has no {debarch} packages (it has {', '.join(arches)})"
    # Release files may list components as e.g. "updates/main"; compare the last part only.
    known = {component.rsplit("/", 1)[-1] for component in fields.get("Components", "").split()}
    unknown = [component for component in recipe.components if known and component not in known]
    if unknown:
        return (
            f"component(s) {', '.join(unknown)} not in suite {recipe.suite}; "
            f"the mirror offers {', '.join(sorted(known))}"
        )
    return None


def _deb822_entries(text: str) -> list[tuple[str, list[str]]]:
    entries = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith(("#", " ", "\t")):
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
            suites = fields.get("suites", "").split()
            entries += [(uri, suites) for uri in fields.get("uris", "").split()]
    return entries


def _one_line_entries(text: str) -> list[tuple[str, list[str]]]:
    entries = []
    for line in text.splitlines():
        line = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0])
        words = line.split()
        if len(words) >= 3 and words[0] == "deb":
            entries.append((words[1], [words[2]]))
    return entries
