"""Build backends: each turns an unpacked recipe of some recipe_type into artifacts."""

from __future__ import annotations

from builders.backends.base import Backend
from builders.backends.debian import DebianBackend
from builders.backends.kiwi import KiwiBackend
from builders.backends.noop import NoopBackend


def available_backends() -> list[Backend]:
    """One instance of every backend (whether this host can run it: ``unavailable_reason``)."""
    return [DebianBackend(), KiwiBackend(), NoopBackend()]


def backend_for(recipe_type: str) -> Backend | None:
    """The backend that builds ``recipe_type``, or None if no backend does."""
    for backend in available_backends():
        if recipe_type in backend.recipe_types:
            return backend
    return None
