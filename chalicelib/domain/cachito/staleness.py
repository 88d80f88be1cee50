"""Cachito requests past their lifetime go ``stale`` (the schedule): complete and in_progress
ones ``cachito_stale_seconds`` after their last update (default 1 day), failed ones
``cachito_failed_stale_seconds`` after (7 days), as upstream Cachito does. Stale is final:
the bundle, its checksum, the package data and the logs are removed; downloading then answers
400 and the logs 410 (faces/cachito)."""

from __future__ import annotations

import contextlib
import datetime

from chalicelib.adapters.artifacts import ArtifactStore, job_log_chunk_prefix
from chalicelib.adapters.cachito_models import CachitoRequestModel
from chalicelib.config import Settings
from chalicelib.domain.cachito import request_records

EXPIRED = "The request has expired"


def _cutoff(seconds: int, now: datetime.datetime) -> str:
    return (now - datetime.timedelta(seconds=seconds)).isoformat(timespec="microseconds")


def expire(
    settings: Settings, store: ArtifactStore, now: datetime.datetime | None = None
) -> list[str]:
    """Mark every request past its lifetime stale (read from the sparse by_expiry index)."""
    now = now or datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    lifetimes = {
        "complete": settings.cachito_stale_seconds,
        "in_progress": settings.cachito_stale_seconds,
        "failed": settings.cachito_failed_stale_seconds,
    }
    outcomes = []
    for state, seconds in lifetimes.items():
        cutoff = _cutoff(seconds, now)
        for request in CachitoRequestModel.by_expiry.query(
            state, CachitoRequestModel.updated < cutoff
        ):
            if make_stale(int(request.id), store):
                outcomes.append(f"{request.id}: stale (was {state})")
    return outcomes


def make_stale(request_id: int, store: ArtifactStore, reason: str = EXPIRED) -> bool:
    """Stale, with what the request kept removed from S3 and from its record."""
    moved = {"value": False}

    def apply(request: CachitoRequestModel) -> None:
        moved["value"] = False
        if request.state == "stale":
            return
        moved["value"] = request_records.set_state(request, "stale", reason)

    request = request_records.change(request_id, apply)
    if moved["value"]:
        remove_outputs(request, store)
        request_records.change(request_id, _forget_outputs)
    return moved["value"]


def remove_outputs(request: CachitoRequestModel, store: ArtifactStore) -> None:
    """Delete the bundle, the package data, configuration files and the logs of a request."""
    keys = [request.bundle_key, request.packages_key, request.configuration_files_key]
    keys.append(request.log_key)
    for key in keys:
        if key:
            with contextlib.suppress(Exception):
                store.delete(key)
    prefixes = [job_log_chunk_prefix(request.job_id)] if request.job_id else []
    if request.bundle_key and "/" in request.bundle_key:  # its signed provenance beside it
        prefixes.append(request.bundle_key.rsplit("/", 1)[0] + "/")
    for prefix in prefixes:
        for key, _ in list(store.objects(prefix)):
            with contextlib.suppress(Exception):
                store.delete(key)


def _forget_outputs(request: CachitoRequestModel) -> None:
    request.bundle_sha256 = None
    request.bundle_etag = None
    request.bundle_size = None
