"""Release names of Kiln's app registry: what a release may be called (a semantic version, as
Quay's appregistry checks it), how releases are ordered (semantic-version precedence), and the
version a push without one gets (omps-behaviour.md §6: the highest x.y.z with its major bumped)."""

from __future__ import annotations

import re
from collections.abc import Iterable

#: releases OMPS computes from (x.y.z only); others (9.0.0-rc1) are kept but not counted
VERSION = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
#: any semantic version (pre-releases and build metadata allowed), as Quay takes releases
RELEASE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
#: the longest release name kept (a DynamoDB range key part; Quay's tags are as short)
MAX_RELEASE_LENGTH = 128

PrecedenceKey = tuple[object, ...]


def valid_release(release: str) -> bool:
    return len(release) <= MAX_RELEASE_LENGTH and RELEASE.match(release) is not None


def version_key(version: str) -> tuple[int, int, int]:
    """An x.y.z version as numbers (only for names VERSION matches)."""
    major, minor, patch = version.split(".")
    return int(major), int(minor), int(patch)


def precedence(release: str) -> PrecedenceKey:
    """Semantic-version precedence: 1.0.0-rc.1 < 1.0.0 < 1.0.1 < 10.0.0; build metadata is
    ignored; a name that is not a semantic version sorts below every one that is."""
    match = RELEASE.match(release)
    if match is None:
        return (-1, release)
    major, minor, patch, pre = match.groups()
    identifiers = tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in (pre or "").split(".")
    )
    return (
        int(major),
        int(minor),
        int(patch),
        0 if pre else 1,
        identifiers if pre else (),
        release,
    )


def highest_first(releases: Iterable[str]) -> list[str]:
    """Distinct release names, highest precedence first (Quay's order in a package listing)."""
    return sorted(set(releases), key=precedence, reverse=True)


def next_version(existing: Iterable[str], default: str) -> str:
    """§6: the highest x.y.z release with its major bumped; none: ``default``."""
    valid = [release for release in existing if VERSION.match(release)]
    if not valid:
        return default
    return f"{max(version_key(release) for release in valid)[0] + 1}.0.0"
