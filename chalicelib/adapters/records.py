"""Reading and writing records through the PynamoDB models, with tenant visibility applied."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError
from pynamodb.models import Model

from chalicelib.adapters.models import TenantRecord
from chalicelib.auth import Principal
from chalicelib.errors import Conflict, NotFound

R = TypeVar("R", bound=TenantRecord)
M = TypeVar("M", bound=Model)


def utc_now() -> str:
    now = datetime.datetime.now(datetime.UTC)
    return now.isoformat(timespec="microseconds").replace("+00:00", "Z")


def epoch(stamp: str) -> float:
    """Epoch seconds of a stamp ``utc_now`` made (a record's ``created``)."""
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def stamp(record: R, tenant: str, kind: str, record_id: str | None = None) -> R:
    """Give a new record its id, owner, creation time and sort key."""
    record.id = record_id or str(uuid.uuid4())
    record.tenant = tenant
    file_under(record, kind)
    record.created = utc_now()
    record.created_id = f"{record.created}#{record.id}"
    return record


def file_under(record: TenantRecord, kind: str) -> None:
    """File a record under ``kind`` in both list indexes (by_kind and by_tenant)."""
    record.kind = kind
    record.tenant_kind = f"{record.tenant}/{kind}"


def insert(record: R) -> R:
    """Save a new record; a second insert of the same id is a conflict, never an overwrite."""
    return save_new(record, type(record).id, f"{record.kind} {record.id} already exists")


def save_new(record: M, key: Any, conflict: str) -> M:
    """Save ``record`` only if no record has its key (``key``: its last key attribute);
    else Conflict(``conflict``), never an overwrite."""
    try:
        record.save(condition=key.does_not_exist())
    except PutError as exc:
        if lost_race(exc):
            raise Conflict(conflict) from exc
        raise
    return record


def lost_race(exc: PutError | DeleteError) -> bool:
    """Whether a write failed only because another writer changed the record first."""
    return "ConditionalCheckFailed" in str(exc)


def save_or_conflict(record: M, what: str) -> M:
    """Save with the version check; a concurrent change is a 409 for the caller to retry."""
    try:
        record.save()
    except PutError as exc:
        if not lost_race(exc):
            raise
        raise Conflict(f"{what} changed at the same time; retry") from exc
    return record


def change_versioned(load: Callable[[], M], change: Callable[[M], None], what: str) -> M:
    """Read, change, save with the version check; read again and retry if another writer won."""
    for _attempt in range(8):
        record = load()
        change(record)
        try:
            record.save()
            return record
        except PutError as exc:
            if not lost_race(exc):
                raise
    raise Conflict(f"{what} kept changing; retry")


#: DynamoDB's longest partition key (bytes): no record has a longer id, and asking for one is
#: a ValidationException on AWS (moto does not check)
KEY_MAX_BYTES = 2048


def find(model: type[M], record_id: str) -> M | None:
    if len(record_id.encode("utf-8", "surrogatepass")) > KEY_MAX_BYTES:
        return None
    try:
        return model.get(record_id, consistent_read=True)
    except DoesNotExist:
        return None


def get_visible(
    model: type[R], record_id: str, principal: Principal, label: str, kind: str | None = None
) -> R:
    """The record, if it exists, the caller may see it and (when given) it is filed under
    ``kind``; else NotFound (never Forbidden)."""
    record = find(model, record_id)
    if record is None or not principal.can_see(record.tenant):
        raise NotFound(f"{label} {record_id} not found")
    if kind is not None and record.kind != kind:
        raise NotFound(f"{label} {record_id} not found")
    return record


def list_visible(model: type[R], principal: Principal, kind: str) -> list[R]:
    """Oldest first, read from the tenant index (users) or the kind index (admins, workers)."""
    if principal.sees_all_tenants:
        return list(model.by_kind.query(kind))  # type: ignore[attr-defined]
    return list(model.by_tenant.query(f"{principal.tenant}/{kind}"))  # type: ignore[attr-defined]
