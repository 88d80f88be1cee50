"""Soft delete, undelete and purge of recipes, images and public keys (IMS v3 ``/deleted``).

A soft-deleted record is re-filed under ``deleted-<kind>``; its S3 artifacts stay where they
are, tagged ``kiln-deleted=<time>`` (so links keep working after an undelete and an S3
lifecycle rule can see them). Every operation runs in three steps:

1. record the operation as ``pending`` on the record (a versioned write),
2. change S3 (tag, untag or delete the artifacts),
3. finish the record (re-file it, or delete it).

Only a record's own objects are tagged or deleted. An image built from the build cache (or
into it) lists objects of a shared set under ``build-cache/<tenant>/`` instead: its soft
delete and undelete leave them alone, and its purge releases its job's hold on the set, whose
objects go only when no hold is left (docs/build-cache.md).

A crash after step 1 leaves ``pending`` set; the next lifecycle call on that record, or the
cleanup schedule, runs steps 2 and 3 again. Both are idempotent, so nothing is half done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import Any

from pynamodb.exceptions import DeleteError, PutError

from chalicelib import observability
from chalicelib.adapters import records
from chalicelib.adapters.artifacts import ArtifactStore, image_prefix, recipe_prefix
from chalicelib.adapters.models import (
    ImageModel,
    JobModel,
    LifecycleRecord,
    PublicKeyModel,
    RecipeModel,
)
from chalicelib.auth import Principal
from chalicelib.domain.builds import build_cache
from chalicelib.domain.builds.job_records import KIND as JOB_RECORDS
from chalicelib.domain.ims import artifact_links, job_kinds
from chalicelib.domain.ims.job_kinds import ImsJob
from chalicelib.domain.states import RECORD_TRANSITIONS, check_move
from chalicelib.domain.validation import BodyCheck, require_object
from chalicelib.errors import Conflict, NotFound

DELETE, UNDELETE, PURGE, PURGE_RECORD_ONLY = "delete", "undelete", "purge", "purge-record-only"
#: the record's lifecycle status while each operation is pending
_STATUS_WHILE = {
    DELETE: "deleting",
    UNDELETE: "undeleting",
    PURGE: "purging",
    PURGE_RECORD_ONLY: "purging",
}


@dataclasses.dataclass(frozen=True)
class Kind:
    name: str  # "recipe": the live kind; deleted records are filed under "deleted-recipe"
    label: str  # for messages
    model: type[LifecycleRecord]
    artifact_keys: Callable[[Any, ArtifactStore], list[str]]
    in_use: Callable[[Any], str | None] = lambda _record: None
    # once the record is purged: give up what it holds elsewhere (keys deleted as a result)
    release: Callable[[Any, ArtifactStore], list[str]] = lambda _record, _store: []

    @property
    def deleted(self) -> str:
        return f"deleted-{self.name}"


def _linked_key(record: Any, store: ArtifactStore, own_prefix: str) -> list[str]:
    """The object the record links, if it is the record's own (see artifact_links)."""
    key = store.own_key(record.link["path"]) if record.link else None
    return [key] if key and artifact_links.own_objects(key, record.tenant, own_prefix) else []


def _recipe_keys(recipe: RecipeModel, store: ArtifactStore) -> list[str]:
    prefix = recipe_prefix(recipe.id)
    under = [key for key, _ in store.objects(prefix)]
    return sorted(set(_linked_key(recipe, store, prefix) + under))


def _image_keys(image: ImageModel, store: ArtifactStore) -> list[str]:
    """The manifest, every artifact it lists, and anything under the image's own prefix (a
    build's uploads): of the first two, only the image's own objects, never another record's
    or another tenant's."""
    prefix = image_prefix(image.id)
    keys = set(_linked_key(image, store, prefix))
    for manifest_key in list(keys):
        if store.exists(manifest_key):
            for artifact in artifact_links.manifest_artifacts(store, manifest_key, image.tenant):
                if artifact_links.own_objects(artifact["key"], image.tenant, prefix):
                    keys.add(artifact["key"])
    keys.update(key for key, _ in store.objects(prefix))
    return sorted(keys)


def _image_in_use(image: ImageModel) -> str | None:
    for job in JobModel.by_unfinished.query(JOB_RECORDS):
        if job.job_kind == job_kinds.CUSTOMIZE_KIND and ImsJob.of(job).artifact_id == image.id:
            return f"image {image.id} is used by job {job.id} ({job.status}); wait or delete it"
    return None


def _release_image(image: ImageModel, store: ArtifactStore) -> list[str]:
    """The hold of the image's build job on a build cache set its manifest lists."""
    return build_cache.release_job(image.source_job_id, store)


RECIPE = Kind("recipe", "recipe", RecipeModel, _recipe_keys)
IMAGE = Kind("image", "image", ImageModel, _image_keys, _image_in_use, _release_image)
PUBLIC_KEY = Kind("public-key", "public key", PublicKeyModel, lambda _r, _s: [])
KINDS = (RECIPE, IMAGE, PUBLIC_KEY)


# -- the operations, one record -------------------------------------------------------------
def soft_delete(principal: Principal, kind: Kind, record_id: str, store: ArtifactStore) -> None:
    record = _load(principal, kind, record_id, store, kind.name)
    _refuse_in_use(kind, record)
    _run(kind, record, DELETE, store)


def hard_delete(
    principal: Principal, kind: Kind, record_id: str, store: ArtifactStore, cascade: bool
) -> None:
    """The legacy API's DELETE: the record goes at once, its artifacts too when ``cascade``."""
    record = _load(principal, kind, record_id, store, kind.name)
    _refuse_in_use(kind, record)
    _run(kind, record, PURGE if cascade else PURGE_RECORD_ONLY, store)


def undelete(
    principal: Principal, kind: Kind, record_id: str, body: Any, store: ArtifactStore
) -> None:
    check_patch(body)
    _run(kind, _load(principal, kind, record_id, store, kind.deleted), UNDELETE, store)


def purge(principal: Principal, kind: Kind, record_id: str, store: ArtifactStore) -> None:
    _run(kind, _load(principal, kind, record_id, store, kind.deleted), PURGE, store)


def check_patch(body: Any) -> None:
    check = BodyCheck(require_object(body), known=("operation",))
    check.choice("operation", (UNDELETE,), required=True)
    check.done()


def get_deleted(principal: Principal, kind: Kind, record_id: str) -> Any:
    return records.get_visible(
        kind.model, record_id, principal, f"deleted {kind.label}", kind.deleted
    )


def list_deleted(principal: Principal, kind: Kind) -> list[Any]:
    return records.list_visible(kind.model, principal, kind.deleted)


# -- collection-wide forms --------------------------------------------------------------------
def soft_delete_all(principal: Principal, kind: Kind, store: ArtifactStore) -> list[str]:
    live = records.list_visible(kind.model, principal, kind.name)
    for record in live:  # refuse before changing anything
        _refuse_in_use(kind, record)
    return [_each(principal, kind, r.id, store, soft_delete) for r in live]


def hard_delete_all(
    principal: Principal, kind: Kind, store: ArtifactStore, cascade: bool
) -> list[str]:
    live = records.list_visible(kind.model, principal, kind.name)
    for record in live:
        _refuse_in_use(kind, record)

    def one(p: Principal, k: Kind, rid: str, s: ArtifactStore) -> None:
        hard_delete(p, k, rid, s, cascade)

    return [_each(principal, kind, r.id, store, one) for r in live]


def undelete_all(principal: Principal, kind: Kind, body: Any, store: ArtifactStore) -> list[str]:
    check_patch(body)

    def one(p: Principal, k: Kind, rid: str, s: ArtifactStore) -> None:
        undelete(p, k, rid, body, s)

    return [_each(principal, kind, r.id, store, one) for r in list_deleted(principal, kind)]


def purge_all(principal: Principal, kind: Kind, store: ArtifactStore) -> list[str]:
    return [_each(principal, kind, r.id, store, purge) for r in list_deleted(principal, kind)]


def _each(
    principal: Principal,
    kind: Kind,
    record_id: str,
    store: ArtifactStore,
    operation: Callable[[Principal, Kind, str, ArtifactStore], None],
) -> str:
    with contextlib.suppress(NotFound):  # another caller got there first
        operation(principal, kind, record_id, store)
    return record_id


# -- background: finish what was interrupted, purge what is old ----------------------------
def finish_interrupted(kind: Kind, store: ArtifactStore, older_than: float) -> list[str]:
    """Finish operations pending for longer than ``older_than`` seconds (never one that is
    still running in a request)."""
    cutoff = time.time() - older_than
    done = []
    for record in kind.model.by_pending.query(kind.name):  # type: ignore[attr-defined]
        if (record.pending_since or 0) <= cutoff:
            _advance(kind, record, store)
            done.append(f"{kind.name} {record.id}: {record.pending} finished")
    return done


def purge_expired(kind: Kind, store: ArtifactStore, retention_seconds: float) -> list[str]:
    """Purge records soft-deleted more than ``retention_seconds`` ago, with their artifacts."""
    cutoff = time.time() - retention_seconds
    purged = []
    for record in kind.model.by_kind.query(kind.deleted):  # type: ignore[attr-defined]
        if record.deleted and records.epoch(record.deleted) <= cutoff and not record.pending:
            try:
                _run(kind, record, PURGE, store)
                purged.append(f"{kind.name} {record.id}")
            except (Conflict, NotFound):  # a concurrent run or a user got there first
                continue
    return purged


# -- the steps ------------------------------------------------------------------------------
def _load(
    principal: Principal, kind: Kind, record_id: str, store: ArtifactStore, filed_under: str
) -> Any:
    """The caller's record, after finishing any operation left pending on it."""
    label = kind.label if filed_under == kind.name else f"deleted {kind.label}"
    record = records.get_visible(kind.model, record_id, principal, label)
    if record.pending:
        _advance(kind, record, store)
        record = records.get_visible(kind.model, record_id, principal, label)
    if record.kind != filed_under:
        raise NotFound(f"{label} {record_id} not found")
    return record


def _refuse_in_use(kind: Kind, record: Any) -> None:
    reason = kind.in_use(record)
    if reason:
        raise Conflict(reason)


def _run(kind: Kind, record: Any, operation: str, store: ArtifactStore) -> None:
    """Step 1: record the operation; then steps 2 and 3."""
    status = _STATUS_WHILE[operation]
    check_move(RECORD_TRANSITIONS, kind.label, record.lifecycle, status)
    record.lifecycle = status
    record.pending, record.pending_kind, record.pending_since = operation, kind.name, time.time()
    if operation == DELETE:
        record.deleted = records.utc_now()
    records.save_or_conflict(record, f"{kind.label} {record.id}")
    _advance(kind, record, store)


def _advance(kind: Kind, record: Any, store: ArtifactStore) -> None:
    """Steps 2 and 3 of the pending operation. Idempotent: safe to run again after a crash."""
    operation = record.pending
    keys = kind.artifact_keys(record, store)
    if operation == DELETE:
        for key in keys:
            store.tag_deleted(key, record.deleted)
    elif operation == UNDELETE:
        for key in keys:
            store.untag(key)
    elif operation == PURGE:
        for key in keys:
            store.delete(key)
    if operation in (PURGE, PURGE_RECORD_ONLY):
        keys = keys + kind.release(record, store)
    finish_step(kind, record)
    observability.logger().info(
        "lifecycle operation finished",
        extra={"kind": kind.name, "id": record.id, "operation": operation, "artifacts": keys},
    )


def finish_step(kind: Kind, record: Any) -> None:
    """Step 3: re-file the record (or remove it). A lost race means another caller finished."""
    operation = record.pending
    try:
        if operation in (PURGE, PURGE_RECORD_ONLY):
            record.delete()
            return
        if operation == DELETE:
            record.lifecycle = "deleted"
            records.file_under(record, kind.deleted)
        elif operation == UNDELETE:
            record.lifecycle, record.deleted = "live", None
            records.file_under(record, kind.name)
        record.pending = record.pending_kind = record.pending_since = None
        record.save()
    except (PutError, DeleteError) as exc:
        if not records.lost_race(exc):
            raise
