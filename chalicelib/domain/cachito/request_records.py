"""The one place a Cachito request's state changes outside a worker's PATCH: versioned
read-change-save, each change a ``state_history`` entry and a new ``updated``. A request
that has ended (complete, failed, stale) never moves back; stale is final."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from chalicelib.adapters import records
from chalicelib.adapters.cachito_models import CachitoRequestModel
from chalicelib.errors import NotFound

#: state -> the states a request may move to (cachito-behaviour.md §4)
TRANSITIONS: dict[str, frozenset[str]] = {
    "in_progress": frozenset({"in_progress", "complete", "failed", "stale"}),
    "complete": frozenset({"stale"}),
    "failed": frozenset({"stale"}),
    "stale": frozenset(),
}
#: states whose requests may still expire (carry ``live_state`` in the by_expiry index)
EXPIRING = ("in_progress", "complete", "failed")


def cachito_now() -> str:
    """UTC, naive ISO 8601 with 6 fractional digits (no offset), as Cachito shows times."""
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    return now.isoformat(timespec="microseconds")


def parse_time(stamp: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(stamp)


def set_state(request: CachitoRequestModel, state: str, reason: str) -> bool:
    """Record a state (a history entry, ``updated``); False when it repeats the current state
    and reason (no entry)."""
    if state == request.state and reason == request.state_reason and request.state_history:
        return False
    now = cachito_now()
    request.state, request.state_reason, request.updated = state, reason, now
    request.live_state = state if state in EXPIRING else None
    history = list(request.state_history or [])
    history.append({"state": state, "state_reason": reason, "updated": now})
    request.state_history = history
    return True


def find(request_id: int) -> CachitoRequestModel | None:
    try:
        return CachitoRequestModel.get(int(request_id), consistent_read=True)
    except CachitoRequestModel.DoesNotExist:
        return None


def change(request_id: int, apply: Callable[[CachitoRequestModel], Any]) -> CachitoRequestModel:
    def load() -> CachitoRequestModel:
        request = find(request_id)
        if request is None:
            raise NotFound(f"Cachito request {request_id} not found")
        return request

    return records.change_versioned(load, apply, f"request {request_id}")


def progress(request_id: int, reason: str) -> bool:
    """An intermediate in_progress state (a host's step); False if the request has ended."""
    moved = {"value": False}

    def apply(request: CachitoRequestModel) -> None:
        moved["value"] = request.state == "in_progress" and set_state(
            request, "in_progress", reason
        )

    change(request_id, apply)
    return moved["value"]


def finish(
    request_id: int,
    state: str,
    reason: str,
    more: Callable[[CachitoRequestModel], None] | None = None,
) -> bool:
    """End an in_progress request as ``state`` once (complete or failed); ``more`` sets what
    comes with it. False if it had ended already."""
    ended = {"value": False}

    def apply(request: CachitoRequestModel) -> None:
        ended["value"] = False
        if request.state != "in_progress" or state not in TRANSITIONS[request.state]:
            return
        if more is not None:
            more(request)
        set_state(request, state, reason)
        ended["value"] = True

    change(request_id, apply)
    return ended["value"]


def fail(request_id: int, reason: str, origin: str, error_type: str, **fields: Any) -> bool:
    def more(request: CachitoRequestModel) -> None:
        request.error_origin, request.error_type = origin, error_type
        for name, value in fields.items():
            setattr(request, name, value)

    return finish(request_id, "failed", reason, more)
