"""What Cachito workers change on a request: ``PATCH /requests/{id}`` (state and reason,
environment variables, counts, error origin and type) and ``POST .../configuration-files``.
Only principals of role ``worker`` may; anyone else gets upstream's 403.

States move by the one transition table of cachito-behaviour.md §4
(``request_records.TRANSITIONS``, which the build core's own changes use too). A PATCH that
repeats the current state and reason adds no history entry and is no error (a worker's task
may run twice). ``error_origin``/``error_type`` are recorded only with ``state: failed``.
Moving to ``stale`` removes the bundle, its checksum, the package data and the logs."""

from __future__ import annotations

import base64
import binascii
import posixpath
from typing import Any

from chalicelib.adapters.artifacts import ArtifactStore
from chalicelib.adapters.cachito_models import CachitoRequestModel
from chalicelib.auth import Principal
from chalicelib.domain.cachito import request_records, schema, staleness
from chalicelib.domain.cachito.job_kinds import artifact_prefix
from chalicelib.domain.cachito.listing import visible
from chalicelib.domain.cachito.request_json import read_json
from chalicelib.errors import BadRequest, Forbidden

WORKERS_ONLY = "This API endpoint is restricted to Cachito workers"
ENVIRONMENT_VARIABLE_KINDS = ("path", "literal")
#: the states in upstream's messages: sorted by name
STATE_NAMES = ", ".join(sorted(schema.STATES))


def require_worker(principal: Principal) -> None:
    if principal.role != "worker":
        raise Forbidden(WORKERS_ONLY)


def check_transition(current: str, new: str) -> None:
    """BadRequest unless the table lets a request in ``current`` move to ``new``."""
    if new not in schema.STATES:
        raise BadRequest(f'The state "{new}" is invalid. It must be one of: {STATE_NAMES}.')
    if new not in request_records.TRANSITIONS.get(current, frozenset()):
        raise BadRequest(f"State transition is not allowed from {current} to {new}.")


def patch(principal: Principal, request_id: str, body: Any, store: ArtifactStore) -> None:
    """Apply a worker's PATCH, checked in upstream's order: the role, the schema, the
    environment variables' kinds, state and reason together, the request, the transition."""
    require_worker(principal)
    schema.check(schema.REQUEST_UPDATE, body)
    for info in (body.get("environment_variables") or {}).values():
        if info["kind"] not in ENVIRONMENT_VARIABLE_KINDS:
            raise BadRequest(f"The environment variable kind, {info['kind']}, is not supported")
    if "state" in body and "state_reason" not in body:
        raise BadRequest('The "state_reason" key is required when "state" is supplied')
    if "state_reason" in body and "state" not in body:
        raise BadRequest('The "state" key is required when "state_reason" is supplied')
    request = visible(request_id, principal)
    went_stale = {"value": False}

    def apply(found: CachitoRequestModel) -> None:
        went_stale["value"] = False
        state, reason = body.get("state"), body.get("state_reason")
        if state is not None and (state, reason) != (found.state, found.state_reason):
            check_transition(found.state, state)
            request_records.set_state(found, state, reason)
            went_stale["value"] = state == "stale"
        if state == "failed" and "error_origin" in body and "error_type" in body:
            found.error_origin, found.error_type = body["error_origin"], body["error_type"]
        if body.get("environment_variables"):
            merged = dict(found.environment_variables or {})
            merged.update(body["environment_variables"])
            found.environment_variables = merged
        for name in ("packages_count", "dependencies_count"):
            if body.get(name) is not None:
                setattr(found, name, int(body[name]))

    changed = request_records.change(int(request.id), apply)
    if went_stale["value"]:
        staleness.remove_outputs(changed, store)
        request_records.change(int(request.id), _forget_bundle)


def _forget_bundle(request: CachitoRequestModel) -> None:
    request.bundle_sha256 = request.bundle_etag = None
    request.bundle_size = None


# -- configuration files -----------------------------------------------------------------------
def configuration_files_key(request_id: int) -> str:
    return f"{artifact_prefix(request_id)}configuration-files.json"


def add_configuration_files(
    principal: Principal, request_id: str, body: Any, store: ArtifactStore
) -> None:
    """A worker adds configuration files (``[{content, path, type: base64}]``); each
    (path, content) is kept once."""
    require_worker(principal)
    schema.check(schema.CONFIGURATION_FILES, body)
    for item in body:
        _check_configuration_file(item)
    request = visible(request_id, principal)
    key = configuration_files_key(int(request.id))
    existing = read_json(store, request.configuration_files_key or key)
    files = [f for f in existing if isinstance(f, dict)] if isinstance(existing, list) else []
    seen = {(f.get("path"), f.get("content")) for f in files}
    for item in body:
        if (item["path"], item["content"]) not in seen:
            seen.add((item["path"], item["content"]))
            files.append({"content": item["content"], "path": item["path"], "type": "base64"})
    store.put_json(key, files)

    def remember(found: CachitoRequestModel) -> None:
        found.configuration_files_key = key

    if request.configuration_files_key != key:
        request_records.change(int(request.id), remember)


def _check_configuration_file(item: dict[str, Any]) -> None:
    """Kiln's checks beyond upstream's: the content is base64 and the path stays inside the
    bundle (a client writes the file under the bundle's root)."""
    try:
        base64.b64decode(item["content"], validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(
            f'The "content" of the configuration file {item["path"]!r} is not base64'
        ) from None
    path = item["path"]
    normal = posixpath.normpath(path) if path else ""
    if not path or path.startswith("/") or normal == ".." or normal.startswith("../"):
        raise BadRequest(
            f'The "path" of a configuration file must be relative to the bundle root and stay '
            f"inside it, not {path!r}"
        )
