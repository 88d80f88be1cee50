"""The release version of an OMPS push (omps-behaviour.md §6): an explicit one must be
``<int>.<int>.<int>``; without one, the package's highest such release with its major bumped,
or the default (``releases.next_version``, which Kiln's registry applies atomically when it
publishes)."""

from __future__ import annotations

from chalicelib.domain.appregistry.releases import VERSION, next_version
from chalicelib.domain.omps.errors import OMPSInvalidVersionFormat

__all__ = ["VERSION", "check_version", "next_version"]


def check_version(version: str) -> str:
    """``version`` if OMPS takes it as an explicit release, else OMPSInvalidVersionFormat.
    The whole text must match (upstream's ``$`` would let a trailing newline through)."""
    if not VERSION.fullmatch(version):
        raise OMPSInvalidVersionFormat(
            f"Version '{version}' must be in format '<int>.<int>.<int>': "
            f"must match regexp '{VERSION.pattern}'"
        )
    return version
