"""The app registry's records (docs/omps.md "The app registry"): packages and releases in
DynamoDB, read consistently, and every write that changes a release in one transaction with
its package (the release's condition decides: a new release must not exist, a replaced or
deleted one must). A write's outcome says whether that condition held; a transaction that lost
a race with another on the same items (DynamoDB's ``TransactionConflict``) is told apart, so
the caller tries again instead of reporting a duplicate."""

from __future__ import annotations

import enum
import random
import re
import time
from collections.abc import Callable

from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.appregistry_models import AppPackageModel, AppReleaseModel
from chalicelib.domain.appregistry.versions import MAX_RELEASE_LENGTH
from chalicelib.domain.omps.organizations import ORG_NAME

#: Quay's repository names
PACKAGE_NAME = re.compile(r"^[a-z0-9][.a-z0-9_-]{0,254}$")
MEDIA_TYPE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
#: attempts at a delete that keeps conflicting with concurrent writes
DELETE_ATTEMPTS = 20


class Outcome(enum.Enum):
    WRITTEN = "written"
    REFUSED = "refused"  # the release's condition failed: it exists (new) or is gone (replace)
    CONFLICT = "conflict"  # a concurrent transaction on the same items: try again


def blob_key(digest: str) -> str:
    return f"appregistry/blobs/sha256/{digest}"


def _named(namespace: str, package: str) -> bool:
    """Names a record can have (anything else is looked up as missing, never sent as a key)."""
    return bool(ORG_NAME.match(namespace) and PACKAGE_NAME.match(package))


def package(namespace: str, name: str) -> AppPackageModel | None:
    if not _named(namespace, name):
        return None
    try:
        return AppPackageModel.get(namespace, name, consistent_read=True)
    except AppPackageModel.DoesNotExist:
        return None


def packages(namespace: str) -> list[AppPackageModel]:
    """A namespace's packages by name (a Query on the hash key, no Scan)."""
    if not ORG_NAME.match(namespace):
        return []
    return list(AppPackageModel.query(namespace, consistent_read=True))


def records(namespace: str, name: str) -> list[AppReleaseModel]:
    if not _named(namespace, name):
        return []
    return list(AppReleaseModel.query(f"{namespace}/{name}", consistent_read=True))


def names(namespace: str, name: str) -> list[str]:
    return [record.release for record in records(namespace, name)]


def find(namespace: str, name: str, release: str, media_type: str) -> AppReleaseModel | None:
    if not (
        _named(namespace, name)
        and 0 < len(release) <= MAX_RELEASE_LENGTH
        and "/" not in release
        and MEDIA_TYPE_NAME.match(media_type)
    ):
        return None
    try:
        return AppReleaseModel.get(
            f"{namespace}/{name}", f"{release}/{media_type}", consistent_read=True
        )
    except AppReleaseModel.DoesNotExist:
        return None


def record(
    namespace: str,
    name: str,
    release: str,
    media_type: str,
    digest: str,
    size: int,
    manifest_digest: str,
    created_at: str,
    push_id: str | None,
) -> AppReleaseModel:
    return AppReleaseModel(
        f"{namespace}/{name}",
        f"{release}/{media_type}",
        release=release,
        media_type=media_type,
        digest=digest,
        size=size,
        manifest_digest=manifest_digest,
        created_at=created_at,
        push_id=push_id,
    )


def write(
    release: AppReleaseModel, visibility: str | None, initial_visibility: str | None
) -> Outcome:
    """Put a new release and count it on its package (created on its first release)."""
    stamp = release.created_at
    actions: list[Action] = [
        AppPackageModel.release_count.add(1),
        AppPackageModel.updated_at.set(stamp),
        AppPackageModel.created_at.set(AppPackageModel.created_at | stamp),
        AppPackageModel.visibility.set(
            visibility or AppPackageModel.visibility | (initial_visibility or "private")
        ),
    ]

    def build(transaction: TransactWrite) -> None:
        transaction.save(release, condition=AppReleaseModel.release_key.does_not_exist())
        transaction.update(_package_of(release), actions=actions)

    return _transact(build)


def replace(release: AppReleaseModel, visibility: str | None) -> Outcome:
    """Put a release over an existing one (a forced push); the count stays."""
    actions: list[Action] = [AppPackageModel.updated_at.set(release.created_at)]
    if visibility:
        actions.append(AppPackageModel.visibility.set(visibility))

    def build(transaction: TransactWrite) -> None:
        transaction.save(release, condition=AppReleaseModel.release_key.exists())
        transaction.update(_package_of(release), actions=actions)

    return _transact(build)


def delete(release: AppReleaseModel, stamp: str | None = None) -> bool:
    """Delete a release and uncount it; False if it is already gone."""
    actions: list[Action] = [AppPackageModel.release_count.add(-1)]
    if stamp:
        actions.append(AppPackageModel.updated_at.set(stamp))

    def build(transaction: TransactWrite) -> None:
        transaction.delete(release, condition=AppReleaseModel.release_key.exists())
        transaction.update(_package_of(release), actions=actions)

    for attempt in range(DELETE_ATTEMPTS):
        outcome = _transact(build)
        if outcome is not Outcome.CONFLICT:
            return outcome is Outcome.WRITTEN
        pause(attempt)
    raise RuntimeError(f"{release.package} {release.release_key}: delete kept conflicting")


def pause(attempt: int) -> None:
    """A short random wait before trying a write again (longer after each attempt)."""
    time.sleep(random.uniform(0, 0.005 * min(attempt + 1, 20)))


def _package_of(release: AppReleaseModel) -> AppPackageModel:
    namespace, name = release.package.split("/", 1)
    return AppPackageModel(namespace, name)


def _transact(build: Callable[[TransactWrite], None]) -> Outcome:
    try:
        with TransactWrite(connection=AppReleaseModel._get_connection().connection) as transaction:
            build(transaction)
    except TransactWriteError as exc:
        if exc.cause_response_code != "TransactionCanceledException":
            raise
        codes = [reason.code if reason else None for reason in exc.cancellation_reasons]
        if codes and codes[0] == "ConditionalCheckFailed":
            return Outcome.REFUSED
        if "TransactionConflict" in codes:
            return Outcome.CONFLICT
        raise
    return Outcome.WRITTEN
