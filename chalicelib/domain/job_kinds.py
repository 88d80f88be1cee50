"""The registry of job kinds: every kind of build job a face makes, and the face code that
handles it (chalicelib/domain/builds/kinds.py says what a kind supplies). The build core
reads kinds here and nowhere else. A new face's kind: its own module, one line below."""

from __future__ import annotations

from chalicelib.domain.builds.kinds import JobKind
from chalicelib.domain.cachito import job_kinds as cachito
from chalicelib.domain.composer import job_kinds as composer
from chalicelib.domain.ims import job_kinds as ims
from chalicelib.domain.ims import rebuild_check_kind as ims_rebuild_checks

REGISTRY: dict[str, JobKind] = {
    kind.name: kind
    for kind in (*ims.KINDS, *ims_rebuild_checks.KINDS, *composer.KINDS, *cachito.KINDS)
}


class UnknownJobKind(KeyError):
    """A job record names a kind no face registered (a coding or deployment error)."""


def kind(name: str) -> JobKind:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownJobKind(f"no face registered job kind {name!r}") from None
