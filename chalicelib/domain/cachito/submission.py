"""``POST /requests``: a new Cachito request.

Everything is checked before anything is stored (upstream stores first and refuses npm/pip/
yarn/RubyGems dependency replacements afterwards, leaving an orphan request): the schema,
then Cachito's own checks in the behaviour file's order and wording, the representative rule
for ``user``, and the repository URL (http or https, through the same address guard as
Glance's web-download).

A POST is idempotent: the same body from the same caller of the same tenant within
``cachito_idempotency_seconds`` returns the request the first one created. A conditional put
of a claim (the hash of tenant, caller, canonical body and time window -> a request id taken
from the counter's atomic ADD) decides which POST creates it; a POST that finds the claim
but not yet the request stores it under the claimed id itself (a conditional put too), so a
creator that died between the two leaves no retried POST waiting. The request is stored
first (``in_progress``, ``The request was initiated``), then its build job is started; from
then on the POST answers 201 whatever happens (a job that cannot start fails the request)."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import posixpath
import time
import urllib.parse
from typing import Any

from pynamodb.exceptions import PutError

from chalicelib import observability
from chalicelib.adapters import records
from chalicelib.adapters.cachito_models import (
    CachitoRequestModel,
    CachitoSubmissionModel,
    CounterModel,
)
from chalicelib.adapters.web_fetch import AllowList, FetchRefused, check_url
from chalicelib.auth import Principal
from chalicelib.config import Settings
from chalicelib.domain.builds.kinds import Ports
from chalicelib.domain.cachito import request_jobs, request_records, schema
from chalicelib.domain.cachito.listing import find
from chalicelib.errors import BadRequest, Conflict, Forbidden

COUNTER = "cachito-request"
INITIATED = "The request was initiated"
DEFAULT_PACKAGE_MANAGERS = ["gomod"]
#: the managers whose sub-packages ``packages`` may name, and the keys each takes
PACKAGE_CONFIG_KEYS = {
    "gomod": ("path",),
    "npm": ("path",),
    "pip": ("path", "requirements_build_files", "requirements_files"),
    "rubygems": ("path",),
    "yarn": ("path",),
}
#: managers that take no dependency replacements, by the name upstream's message gives them
NO_REPLACEMENTS = {"npm": "npm", "pip": "pip", "rubygems": "RubyGems", "yarn": "yarn"}
REPLACEMENT_KEYS = ("name", "type", "version")
ON_BEHALF = "You are not authorized to create a request on behalf of another user"
LOGIN_DISABLED = 'Cannot set "user" when authentication is disabled'
#: the subject of a call without a token where login is disabled (settings.cachito_anonymous_tenant)
ANONYMOUS = ""


@dataclasses.dataclass(frozen=True)
class Checked:
    """A request body that passed every check: what the record stores."""

    repo: str
    ref: str
    pkg_managers: list[str]
    packages: dict[str, Any]
    flags: list[str]
    dependency_replacements: list[dict[str, Any]]
    user: str
    submitted_by: str | None


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def check(body: Any, principal: Principal, settings: Settings) -> Checked:
    """Every check of a new request, in order; BadRequest or Forbidden with upstream's text."""
    schema.check(schema.REQUEST_NEW, body)
    requested = body.get("pkg_managers")
    managers = list(dict.fromkeys(DEFAULT_PACKAGE_MANAGERS if requested is None else requested))
    not_enabled = [m for m in managers if m not in _names(settings.cachito_package_managers)]
    if not_enabled:
        raise BadRequest(
            f"The following package managers are not enabled: {', '.join(sorted(not_enabled))}"
        )
    flags = sorted(set(body.get("flags") or []))
    inactive = [flag for flag in flags if flag not in _names(settings.cachito_flags)]
    if inactive:
        raise BadRequest(f"Invalid/Inactive flag(s): {', '.join(inactive)}")
    packages = body.get("packages") or {}
    _check_packages(packages, managers, settings)
    replacements = body.get("dependency_replacements") or []
    _check_replacements(replacements, managers)
    user, submitted_by = principal.subject, None
    if body.get("user"):
        if principal.subject == ANONYMOUS:
            raise BadRequest(LOGIN_DISABLED)
        if principal.subject not in _names(settings.cachito_representatives):
            raise Forbidden(ON_BEHALF)
        user, submitted_by = body["user"], principal.subject
    _check_repo(body["repo"], settings)
    return Checked(
        repo=body["repo"],
        ref=body["ref"],
        pkg_managers=sorted(managers),
        packages=packages,
        flags=flags,
        dependency_replacements=replacements,
        user=user,
        submitted_by=submitted_by,
    )


def _check_packages(packages: dict[str, Any], managers: list[str], settings: Settings) -> None:
    foreign = [name for name in packages if name not in managers]
    if foreign:
        raise BadRequest(
            'The following package managers in the "packages" object do not apply: '
            + ", ".join(foreign)
        )
    for manager, configs in packages.items():
        keys = PACKAGE_CONFIG_KEYS[manager]
        malformed = BadRequest(
            f'The value of "packages.{manager}" must be an array of objects with the following '
            f"keys: {', '.join(keys)}"
        )
        for config in configs:
            if not config or set(config) - set(keys):
                raise malformed
            if config.get("path") is not None:
                _check_path(manager, "path", config["path"])
            for name in ("requirements_files", "requirements_build_files"):
                for path in config.get(name) or []:
                    _check_path(manager, name, path)
    _check_exclusive(packages, managers, settings)


def _check_path(manager: str, name: str, path: str) -> None:
    normal = os.path.normpath(path) if path else ""
    if not path or posixpath.isabs(path) or os.pardir in normal.split(os.sep):
        raise BadRequest(
            f'The "{name}" values in the "packages.{manager}" value must be to a relative '
            "path in the source repository"
        )


def _check_exclusive(packages: dict[str, Any], managers: list[str], settings: Settings) -> None:
    """No path is processed by two managers the operator made mutually exclusive."""
    pairs = set()
    for pair in _names(settings.cachito_exclusive_pairs):
        first, _, second = pair.partition(":")
        pairs |= {(first.strip(), second.strip()), (second.strip(), first.strip())}
    paths = {
        manager: {os.path.normpath(c.get("path", ".")) for c in packages.get(manager, [{}])}
        for manager in managers
        if manager != "git-submodule"
    }
    if "git-submodule" in managers:
        for manager, found in paths.items():
            if (manager, "git-submodule") in pairs and any(path != "." for path in found):
                raise BadRequest(
                    f"Cannot process non-root packages with '{manager}' when 'git-submodule' is "
                    "also set.\nSolution: remove the git submodules and instead process the "
                    "upstream repos (corresponding to the submodules) directly. Each repo should "
                    "be processed in a separate request."
                )
    for first, second in itertools.combinations(paths, 2):
        shared = paths[first] & paths[second] if (first, second) in pairs else set()
        if shared:
            raise BadRequest(
                f"The following paths cannot be processed by both '{first}' and '{second}': "
                f"{', '.join(sorted(shared))}"
            )


def _check_replacements(replacements: list[dict[str, Any]], managers: list[str]) -> None:
    for replacement in replacements:
        if set(replacement) - {*REPLACEMENT_KEYS, "new_name"}:
            raise BadRequest(
                "A dependency replacement must be a JSON object with the following keys: "
                f"{', '.join(REPLACEMENT_KEYS)}. It may also contain the following optional "
                "keys: new_name."
            )
        for key in (*REPLACEMENT_KEYS, "new_name"):
            if key in replacement and not isinstance(replacement[key], str):
                raise BadRequest(f'The "{key}" key of the dependency replacement must be a string')
    types = {replacement["type"] for replacement in replacements}
    for manager in managers:
        if manager in NO_REPLACEMENTS and manager in types:
            raise BadRequest(
                "Dependency replacements are not yet supported for the "
                f"{NO_REPLACEMENTS[manager]} package manager"
            )


def _check_repo(repo: str, settings: Settings) -> None:
    """Only http and https repositories, and none the address guard refuses."""
    try:
        scheme = urllib.parse.urlsplit(repo).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme not in ("http", "https"):
        raise BadRequest(
            'The "repo" value must be an http or https URL of a git repository '
            f"(e.g. https://github.com/org/name.git), not {repo!r}"
        )
    try:
        check_url(repo, AllowList.parse(settings.cachito_allow))
    except FetchRefused as exc:
        raise BadRequest(f'The "repo" URL cannot be fetched from: {exc}') from None


# -- storing, once ------------------------------------------------------------------------------
def submission_key(principal: Principal, body: Any, window: int) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    text = "\n".join((principal.tenant, principal.subject, canonical, str(window)))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def create(principal: Principal, body: Any, ports: Ports) -> CachitoRequestModel:
    """Check the body, then return the request this POST (or the same one moments ago)
    created; a request this call stored has its build job started."""
    checked = check(body, principal, ports.settings)
    request_id = _claimed_id(principal, body, ports.settings.cachito_idempotency_seconds)
    existing = find(request_id)
    if existing is not None:
        return existing
    request = _new_record(request_id, principal, checked)
    try:
        records.save_new(request, CachitoRequestModel.id, f"request {request_id} exists")
    except Conflict:  # the POST that claimed it stored it meanwhile
        stored = find(request_id)
        if stored is None:
            raise
        return stored
    observability.logger().info("Cachito request stored", extra={"request_id": request_id})
    try:
        request_jobs.begin_request(request, ports)
        return find(request_id) or request  # as its start left it (failed, if it could not)
    except Exception:  # stored: answered 201 whatever happens now (a 5xx makes duplicates)
        observability.logger().exception("starting a Cachito request failed")
        return request


def _claimed_id(principal: Principal, body: Any, window_seconds: int) -> int:
    """The id of the request the same POST claimed within the window, or a new claim's."""
    window_seconds = max(1, int(window_seconds))
    now = time.time()
    window = int(now // window_seconds)
    for candidate in (window, window - 1):  # a retry just after the window turned
        claim = _claim(submission_key(principal, body, candidate))
        if claim is not None and now - records.epoch(claim.created) <= window_seconds:
            return int(claim.request_id)
    key = submission_key(principal, body, window)
    claim = CachitoSubmissionModel(
        key,
        request_id=_next_id(),
        created=records.utc_now(),
        expires=int(now) + 2 * window_seconds,  # past any window it answers for: TTL removes it
    )
    try:
        claim.save(condition=CachitoSubmissionModel.key.does_not_exist())
    except PutError as exc:
        if not records.lost_race(exc):
            raise
        won = _claim(key)
        if won is None:
            raise
        return int(won.request_id)
    return int(claim.request_id)


def _claim(key: str) -> CachitoSubmissionModel | None:
    try:
        return CachitoSubmissionModel.get(key, consistent_read=True)
    except CachitoSubmissionModel.DoesNotExist:
        return None


def _next_id() -> int:
    counter = CounterModel(COUNTER)
    counter.update(actions=[CounterModel.value.add(1)])
    return int(counter.value)


def _new_record(request_id: int, principal: Principal, checked: Checked) -> CachitoRequestModel:
    request = CachitoRequestModel(
        request_id,
        tenant=principal.tenant,
        repo=checked.repo,
        ref=checked.ref,
        pkg_managers=checked.pkg_managers,
        packages_spec=checked.packages,
        flags=checked.flags,
        dependency_replacements=checked.dependency_replacements,
        user=checked.user,
        submitted_by=checked.submitted_by,
        state_history=[],
    )
    request.created = request_records.cachito_now()
    request_records.set_state(request, "in_progress", INITIATED)
    request.created = request.updated  # one moment: created is the first state's
    return request
