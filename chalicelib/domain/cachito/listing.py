"""Reading requests: one by id (as its owner's tenant sees it), the paged list with upstream's
filters, and ``/requests/latest``. Lists read the request indexes newest id first —
``by_tenant`` for a user (its tenant's requests only), ``by_kind`` for admins and workers
(every tenant's) — never a table scan.

Paging as upstream: ``page`` from 1, ``per_page`` 10 by default and at most 100; a page
below 1, or an empty page other than the first, is not found. The ``meta`` links carry every
filter of the query (upstream's drop all but ``state`` and ``verbose``, so following ``next``
changed the result set)."""

from __future__ import annotations

import datetime
import math
import re
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

from chalicelib.adapters.cachito_models import REQUEST_KIND, CachitoRequestModel
from chalicelib.auth import Principal
from chalicelib.domain.cachito import schema
from chalicelib.domain.cachito.request_json import API
from chalicelib.domain.cachito.schema import FieldErrors, Param, Query
from chalicelib.errors import NotFound

DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 100
#: pydantic's message for a value that is neither a datetime, a date nor a unix time
INVALID_DATE = "invalid date format"
_UNIX_TIME = re.compile(r"^[+-]?[0-9]+(\.[0-9]+)?$")
#: a request id: ASCII digits, short enough to be a DynamoDB number
_ID = re.compile(r"^[0-9]{1,18}$")

LIST_PARAMS = (
    Param("page", {"type": "integer"}, "integer"),
    Param("per_page", {"type": "integer"}, "integer"),
    Param("state", schema.STATE),
    Param("verbose", {"type": "boolean"}, "boolean"),
    Param("repo", schema.REPO),
    Param("ref", schema.REF),
    Param("pkg_manager", schema.PACKAGE_MANAGER, repeated=True),
    Param("created_from"),
    Param("created_to"),
    Param("error_origin", schema.ERROR_ORIGIN),
    Param("error_type"),
)
LATEST_PARAMS = (
    Param("repo_name", schema.REPO_NAME, required=True),
    Param("ref", schema.REF, required=True),
)
#: the filters a list's links carry, in this order, after page and per_page
_LINKED = ("state", "verbose", "repo", "ref", "pkg_manager")
_LINKED_AFTER = ("created_from", "created_to", "error_origin", "error_type")

Render = Callable[[CachitoRequestModel, bool], dict[str, Any]]


def find(request_id: int | str) -> CachitoRequestModel | None:
    try:
        return CachitoRequestModel.get(int(request_id), consistent_read=True)
    except CachitoRequestModel.DoesNotExist:
        return None


def visible(request_id: str, principal: Principal) -> CachitoRequestModel:
    """The request, if it exists and the caller may see it; NotFound otherwise (another
    tenant's request does not exist for a user)."""
    if not _ID.match(request_id):
        raise NotFound(f"no Cachito request {request_id!r}")
    request = find(int(request_id))
    if request is None or not principal.can_see(request.tenant):
        raise NotFound(f"no Cachito request {request_id}")
    return request


def newest_first(principal: Principal, condition: Any = None, **options: Any) -> Iterator[Any]:
    """The requests the caller sees, newest id first, from the index that holds them."""
    if principal.sees_all_tenants:
        return iter(
            CachitoRequestModel.by_kind.query(
                REQUEST_KIND, filter_condition=condition, scan_index_forward=False, **options
            )
        )
    return iter(
        CachitoRequestModel.by_tenant.query(
            principal.tenant, filter_condition=condition, scan_index_forward=False, **options
        )
    )


# -- GET /requests ----------------------------------------------------------------------------
def list_requests(
    principal: Principal, pairs: list[tuple[str, str]], base: str, render: Render
) -> dict[str, Any]:
    """``{"items", "meta"}`` of one page; ``render(request, verbose)`` shows each request."""
    query = schema.check_query(LIST_PARAMS, pairs)
    page = int(query.get("page", 1))
    per_page = min(int(query.get("per_page", DEFAULT_PER_PAGE)), MAX_PER_PAGE)
    if page < 1 or per_page < 1:
        raise NotFound(f"page {page} of {per_page} per page does not exist")
    verbose = bool(query.get("verbose", False))
    wanted = {name for name in query.all("pkg_manager") if name}
    ids = [
        int(found.id)
        for found in newest_first(
            principal, _condition(query), attributes_to_get=["id", "pkg_managers"]
        )
        if wanted <= set(found.pkg_managers or [])
    ]
    total = len(ids)
    pages = math.ceil(total / per_page)
    chosen = ids[(page - 1) * per_page : page * per_page]
    if not chosen and page != 1:
        raise NotFound(f"page {page} is past the last page ({pages})")
    items = _by_id(chosen)
    links = _Links(base, per_page, _filters(query, verbose))
    return {
        "items": [
            render(items[request_id], verbose) for request_id in chosen if request_id in items
        ],
        "meta": {
            "first": links.page(1),
            "last": links.page(pages),
            "next": links.page(page + 1) if page < pages else None,
            "page": page,
            "pages": pages,
            "per_page": per_page,
            "previous": links.page(page - 1) if page > 1 else None,
            "total": total,
        },
    }


def _by_id(ids: list[int]) -> dict[int, CachitoRequestModel]:
    if not ids:
        return {}
    return {
        int(found.id): found for found in CachitoRequestModel.batch_get(ids, consistent_read=True)
    }


def _condition(query: Query) -> Any:
    """The DynamoDB filter of every filter but pkg_manager (checked on the ids read)."""
    model = CachitoRequestModel
    parts = []
    for name, attribute in (
        ("state", model.state),
        ("repo", model.repo),
        ("ref", model.ref),
        ("error_origin", model.error_origin),
        ("error_type", model.error_type),
    ):
        value = query.get(name)
        if value:  # an empty value filters nothing, as upstream
            parts.append(attribute == value)
    created_from, created_to = _created_range(query)
    if created_from is not None:
        parts.append(model.created >= created_from)
    if created_to is not None:
        parts.append(model.created <= created_to)
    condition = None
    for part in parts:
        condition = part if condition is None else condition & part
    return condition


def _created_range(query: Query) -> tuple[str | None, str | None]:
    """created_from and created_to as stamps to compare ``created`` with; a date given as
    created_to covers that whole day. FieldErrors names each value that is no time."""
    errors: dict[str, str] = {}
    found: dict[str, str | None] = {}
    for name in ("created_from", "created_to"):
        raw = query.get(name)
        found[name] = None
        if not raw:
            continue
        moment = parse_moment(raw, end_of_day=name == "created_to")
        if moment is None:
            errors[name] = INVALID_DATE
        else:
            found[name] = moment.isoformat(timespec="microseconds")
    if errors:
        raise FieldErrors("; ".join(f"{k}: {v}" for k, v in errors.items()), errors)
    return found["created_from"], found["created_to"]


def parse_moment(raw: str, end_of_day: bool = False) -> datetime.datetime | None:
    """A naive UTC datetime of ``2021-12-31``, ``2021-12-31T12:00:00`` (an offset converted)
    or unix seconds, as upstream's pydantic reads them; None if it is none of them."""
    text = raw.strip()
    try:
        if _UNIX_TIME.match(text):
            seconds = float(text)
            if abs(seconds) > 2e10:  # pydantic: a larger number is milliseconds
                seconds /= 1000
            stamp = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
            return stamp.replace(tzinfo=None)
        if "T" in text or " " in text:
            moment = datetime.datetime.fromisoformat(text)
            if moment.tzinfo is not None:
                moment = moment.astimezone(datetime.UTC).replace(tzinfo=None)
            return moment
        day = datetime.date.fromisoformat(text)
    except (ValueError, OverflowError, OSError):
        return None
    return datetime.datetime.combine(day, datetime.time.max if end_of_day else datetime.time.min)


def _filters(query: Query, verbose: bool) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for name in _LINKED + _LINKED_AFTER:
        if name == "verbose":
            if verbose:
                pairs.append(("verbose", "True"))
            continue
        for value in query.all(name):
            if value not in (None, ""):
                pairs.append((name, str(value)))
    return pairs


class _Links:
    def __init__(self, base: str, per_page: int, filters: list[tuple[str, str]]) -> None:
        self._base, self._per_page, self._filters = base, per_page, filters

    def page(self, number: int) -> str:
        pairs = [("page", str(number)), ("per_page", str(self._per_page)), *self._filters]
        return f"{self._base}{API}/requests?{urllib.parse.urlencode(pairs)}"


# -- GET /requests/latest ---------------------------------------------------------------------
def repo_name(url: str) -> str:
    """A repository URL's path without its slashes and a trailing ``.git`` (upstream's)."""
    name = urllib.parse.urlparse(url).path.strip("/")
    return name[: -len(".git")] if name.endswith(".git") else name


def latest(principal: Principal, pairs: list[tuple[str, str]]) -> CachitoRequestModel:
    """The highest-id request the caller sees with that ref whose repository is
    ``repo_name``; NotFound if there is none."""
    query = schema.check_query(LATEST_PARAMS, pairs)
    name, ref = str(query.get("repo_name")), str(query.get("ref"))
    condition = (CachitoRequestModel.ref == ref) & CachitoRequestModel.repo.contains(name)
    for found in newest_first(principal, condition):
        if repo_name(found.repo) == name:
            return found  # type: ignore[no-any-return]
    raise NotFound(f"no request for {name} at {ref}")
