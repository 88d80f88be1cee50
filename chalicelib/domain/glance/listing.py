"""GET /v2/images: what a caller may see, filtered, sorted and paged, read from indexes.

A tenant's images come from ``by_owner``, public and community ones from the sparse
``by_listed`` and images shared with it from ``by_member``: what other tenants keep private is
never read. In the default order (newest first) the sources are merged as they stream, so a
page reads about ``limit`` records past the marker; other orders read the caller's whole
visible set once and sort it.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

from chalicelib.adapters.glance_models import REGISTRY, GlanceImageModel, GlanceMemberModel
from chalicelib.auth import Principal
from chalicelib.domain.glance.access import UUID, is_admin, visible
from chalicelib.domain.glance.list_query import DEFAULT_SORT, ListQuery
from chalicelib.errors import BadRequest, NotFound

PAGE = 100  # records per index read when a whole visible set is read


def _page_size(query: ListQuery, below: str | None) -> int:
    """A page of the default order needs about ``limit`` + 1 records from each source."""
    return PAGE if below is None and query.sort != DEFAULT_SORT else min(query.limit + 1, PAGE)


@dataclasses.dataclass
class Page:
    images: list[GlanceImageModel]
    more: bool


def list_images(query: ListQuery, principal: Principal) -> Page:
    marker = _marker(query.marker, principal)

    def wanted(image: GlanceImageModel) -> bool:
        # without a visibility, no one's list (an admin's neither) has others' community images
        if query.visibility is None and image.visibility == "community":
            return image.owner == principal.tenant and query.matches(image)
        return query.matches(image)

    if query.sort == DEFAULT_SORT:
        below = marker.created_id if marker else None
        found = itertools.islice(
            (i for i in _merged(query, principal, below) if wanted(i)), query.limit + 1
        )
        chosen = list(found)
        return Page(chosen[: query.limit], len(chosen) > query.limit)
    every = sorted((i for i in _merged(query, principal, None) if wanted(i)), key=query.sort_key())
    start = 0
    if marker is not None:
        ids = [i.id for i in every]
        if marker.id not in ids:
            raise BadRequest(f"Invalid marker. Image {marker.id} could not be found.")
        start = ids.index(marker.id) + 1
    chosen = every[start : start + query.limit + 1]
    return Page(chosen[: query.limit], len(chosen) > query.limit)


def _marker(marker: str | None, principal: Principal) -> GlanceImageModel | None:
    if marker is None:
        return None
    try:
        if not UUID.match(marker):
            raise NotFound(marker)
        return visible(marker, principal)
    except NotFound as exc:
        raise BadRequest(f"Invalid marker. Image {marker} could not be found.") from exc


def _merged(
    query: ListQuery, principal: Principal, below: str | None
) -> Iterator[GlanceImageModel]:
    """Every image the query's sources hold for the caller, newest first, each once."""
    streams = [_stream(source, principal, query, below) for source in _sources(query, principal)]
    seen: set[str] = set()
    for image in heapq.merge(*streams, key=lambda i: i.created_id, reverse=True):
        if image.id not in seen:
            seen.add(image.id)
            yield image


def _sources(query: ListQuery, principal: Principal) -> list[str]:
    if is_admin(principal):
        return ["registry"]
    wanted = query.visibility
    if wanted is None:
        return ["own", "public", "member"]
    return {
        "public": ["public"],
        "community": ["community"],
        "private": ["own"],
        "shared": ["own", "member"],
        "all": ["own", "public", "community", "member"],
    }[wanted]


def _stream(
    source: str, principal: Principal, query: ListQuery, below: str | None
) -> Iterator[GlanceImageModel]:
    condition = GlanceImageModel.created_id < below if below else None
    if source == "member":
        yield from _shared_with(principal.tenant, query.member_status, below)
        return
    index, key = {
        "registry": (GlanceImageModel.by_registry, REGISTRY),
        "own": (GlanceImageModel.by_owner, principal.tenant),
        "public": (GlanceImageModel.by_listed, "public"),
        "community": (GlanceImageModel.by_listed, "community"),
    }[source]
    yield from index.query(
        key,
        range_key_condition=condition,
        scan_index_forward=False,
        page_size=_page_size(query, below),
    )


def _shared_with(tenant: str, status: str, below: str | None) -> Iterator[GlanceImageModel]:
    """Shared images whose member ``tenant`` has ``status`` ('all': any), newest first."""
    condition = GlanceMemberModel.image_created_id < below if below else None
    members: Iterable[GlanceMemberModel] = GlanceMemberModel.by_member.query(
        tenant, range_key_condition=condition, scan_index_forward=False, page_size=PAGE
    )
    wanted = (m for m in members if status == "all" or m.status == status)
    for batch in _batched(wanted, PAGE):
        found = {i.id: i for i in GlanceImageModel.batch_get([m.image_id for m in batch])}
        for member in batch:
            image = found.get(member.image_id)
            if image is not None and image.visibility == "shared":
                yield image


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
