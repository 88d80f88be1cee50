"""Kiln's app registry: releases of packages, each a blob (a tar.gz) under a media type, as
Quay's appregistry (CNR) API keeps them (omps-behaviour.md §14; docs/design-omps.md).

A release is written once: its record is put with ``attribute_not_exists`` in one transaction
with its package's release counter, so a duplicate is PackageExists and never a clobber. The
blob goes to S3 first, named by its sha256 (the same bytes are one object). With no release
given, ``publish`` takes the next version of the one package (§6) and, when a concurrent push
took it first, the next one after that."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import json
import re

from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.appregistry_models import AppPackageModel, AppReleaseModel
from chalicelib.adapters.artifacts import ArtifactStore, ObjectMissing
from chalicelib.config import Settings
from chalicelib.domain.appregistry import access
from chalicelib.domain.appregistry.callers import Caller
from chalicelib.domain.appregistry.errors import (
    InvalidRelease,
    InvalidUsage,
    PackageExists,
    PackageNotFound,
)
from chalicelib.domain.omps import organizations
from chalicelib.domain.omps.organizations import Organization

MEDIA_TYPES = ("helm", "kpm", "docker-compose")
#: releases OMPS computes from (x.y.z only); others (9.0.0-rc1) are kept but not counted
VERSION = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
#: any semantic version (pre-releases and build metadata allowed), as Quay takes releases
RELEASE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
PACKAGE_NAME = re.compile(r"^[a-z0-9][.a-z0-9_-]{0,254}$")
NAMESPACE_NAME = organizations.ORG_NAME
#: attempts at the next version when concurrent pushes keep taking it
ALLOCATION_ATTEMPTS = 50


def blob_key(digest: str) -> str:
    return f"appregistry/blobs/sha256/{digest}"


@dataclasses.dataclass(frozen=True)
class Release:
    namespace: str
    package: str
    release: str
    media_type: str
    digest: str  # sha256 hex of the blob
    size: int
    manifest_digest: str
    created_at: str
    visibility: str

    @property
    def name(self) -> str:
        return f"{self.namespace}/{self.package}"


@dataclasses.dataclass(frozen=True)
class PackageSummary:
    namespace: str
    package: str
    releases: tuple[str, ...]  # newest first
    default: str
    visibility: str
    created_at: str
    updated_at: str
    media_types: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.namespace}/{self.package}"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def version_key(version: str) -> tuple[int, int, int]:
    major, minor, patch = version.split(".")
    return int(major), int(minor), int(patch)


def next_version(existing: list[str], default: str) -> str:
    """§6: the highest x.y.z release with its major bumped; none: ``default``."""
    valid = [release for release in existing if VERSION.match(release)]
    if not valid:
        return default
    return f"{max(version_key(release) for release in valid)[0] + 1}.0.0"


class AppRegistry:
    """The registry's use cases; ``store`` holds the blobs, ``settings`` the organizations."""

    def __init__(self, store: ArtifactStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def organization(self, namespace: str) -> Organization:
        return _organizations(self.settings.omps_organizations).get(namespace) or Organization(
            namespace
        )

    # -- writes -----------------------------------------------------------------------------
    def publish(
        self,
        caller: Caller,
        namespace: str,
        package: str,
        blob: bytes,
        *,
        release: str | None,
        media_type: str = "helm",
        default_release: str | None = None,
        visibility: str | None = None,
        push_id: str | None = None,
    ) -> Release:
        """Store ``blob`` as ``release`` of the package (None: the next version, §6)."""
        _check_names(namespace, package)
        if media_type not in MEDIA_TYPES:
            raise InvalidUsage(f"Unsupported media type: {media_type}")
        if release is not None and not RELEASE.match(release):
            raise InvalidRelease(f"Invalid release: {release}", {"version": release})
        organization = self.organization(namespace)
        existing = self._package(namespace, package)
        access.require_write(caller, organization, package, exists=existing is not None)
        digest = hashlib.sha256(blob).hexdigest()
        if self.store.head(blob_key(digest)) is None:
            self.store.put_bytes(blob_key(digest), blob, "application/x-gzip")
        default = default_release or self.settings.omps_default_release_version
        for _attempt in range(ALLOCATION_ATTEMPTS):
            version = release or next_version(self._release_names(namespace, package), default)
            record = self._record(
                namespace, package, version, media_type, digest, len(blob), push_id
            )
            if self._write(record, visibility):
                return self._release(record, visibility or self._visibility(namespace, package))
            if release is not None:
                raise _exists(namespace, package, version, media_type)
        raise PackageExists(
            f"{namespace}/{package}: no free version after {ALLOCATION_ATTEMPTS} attempts"
        )

    def delete(
        self, caller: Caller, namespace: str, package: str, release: str, media_type: str = "helm"
    ) -> Release:
        organization = self.organization(namespace)
        existing = self._package(namespace, package)
        found = self._find(namespace, package, release, media_type)
        if found is None or existing is None:
            raise _missing(namespace, package, release, media_type)
        access.require_read(caller, organization, package, existing.visibility)
        access.require_write(caller, organization, package, exists=True)
        try:
            with TransactWrite(connection=_connection()) as transaction:
                transaction.delete(found, condition=AppReleaseModel.release_key.exists())
                transaction.update(
                    AppPackageModel(namespace, package),
                    actions=[
                        AppPackageModel.release_count.add(-1),
                        AppPackageModel.updated_at.set(now()),
                    ],
                )
        except TransactWriteError as exc:
            if _cancelled(exc):
                raise _missing(namespace, package, release, media_type) from exc
            raise
        return self._release(found, existing.visibility)

    # -- reads ------------------------------------------------------------------------------
    def releases(
        self, caller: Caller, namespace: str, package: str, media_type: str | None = None
    ) -> list[Release]:
        """The package's releases, newest first (PackageNotFound: none the caller may see)."""
        existing = self._package(namespace, package)
        if existing is None or not existing.release_count:
            raise PackageNotFound(f"package {namespace}/{package} doesn't exist")
        access.require_read(caller, self.organization(namespace), package, existing.visibility)
        found = [
            self._release(record, existing.visibility)
            for record in AppReleaseModel.query(f"{namespace}/{package}")
            if media_type is None or record.media_type == media_type
        ]
        return sorted(found, key=lambda item: (item.created_at, item.release), reverse=True)

    def release(
        self, caller: Caller, namespace: str, package: str, release: str, media_type: str
    ) -> Release:
        existing = self._package(namespace, package)
        found = self._find(namespace, package, release, media_type)
        if existing is None or found is None:
            raise _missing(namespace, package, release, media_type)
        access.require_read(caller, self.organization(namespace), package, existing.visibility)
        return self._release(found, existing.visibility)

    def blob(self, caller: Caller, namespace: str, package: str, digest: str) -> bytes:
        """A blob of one of the package's releases, by its sha256."""
        existing = self._package(namespace, package)
        if existing is None or not any(
            record.digest == digest for record in AppReleaseModel.query(f"{namespace}/{package}")
        ):
            raise PackageNotFound(f"blob {digest} of package {namespace}/{package} doesn't exist")
        access.require_read(caller, self.organization(namespace), package, existing.visibility)
        try:
            return self.store.read(blob_key(digest))
        except ObjectMissing:
            raise PackageNotFound(f"blob {digest} doesn't exist") from None

    def packages(
        self,
        caller: Caller,
        namespace: str,
        media_type: str | None = None,
        query: str | None = None,
    ) -> list[PackageSummary]:
        """The namespace's packages with at least one release the caller may read."""
        organization = self.organization(namespace)
        found = []
        for package in AppPackageModel.query(namespace):
            if not package.release_count or (query and query not in package.name):
                continue
            if not access.can_read(caller, organization, package.visibility):
                continue
            records = list(AppReleaseModel.query(f"{namespace}/{package.name}"))
            if media_type is not None:
                records = [record for record in records if record.media_type == media_type]
            if records:
                found.append(_summary(package, records))
        return found

    def next_release(self, caller: Caller, namespace: str, package: str, default: str) -> str:
        """The version a push without one gets now (§6); reads the one package."""
        existing = self._package(namespace, package)
        if existing is None or not existing.release_count:
            return default
        access.require_read(caller, self.organization(namespace), package, existing.visibility)
        return next_version(self._release_names(namespace, package), default)

    def release_names(self, caller: Caller, namespace: str, package: str) -> list[str]:
        """Every release of the package (valid or not), newest first."""
        return [found.release for found in self.releases(caller, namespace, package)]

    # -- records ----------------------------------------------------------------------------
    def _package(self, namespace: str, package: str) -> AppPackageModel | None:
        try:
            return AppPackageModel.get(namespace, package, consistent_read=True)
        except AppPackageModel.DoesNotExist:
            return None

    def _visibility(self, namespace: str, package: str) -> str:
        existing = self._package(namespace, package)
        return existing.visibility if existing else "private"

    def _find(
        self, namespace: str, package: str, release: str, media_type: str
    ) -> AppReleaseModel | None:
        try:
            return AppReleaseModel.get(
                f"{namespace}/{package}", f"{release}/{media_type}", consistent_read=True
            )
        except AppReleaseModel.DoesNotExist:
            return None

    def _release_names(self, namespace: str, package: str) -> list[str]:
        return [
            record.release
            for record in AppReleaseModel.query(f"{namespace}/{package}", consistent_read=True)
        ]

    def _record(
        self,
        namespace: str,
        package: str,
        version: str,
        media_type: str,
        digest: str,
        size: int,
        push_id: str | None,
    ) -> AppReleaseModel:
        name = f"{namespace}/{package}"
        manifest = json.dumps(
            {"package": name, "release": version, "media_type": media_type, "digest": digest},
            sort_keys=True,
        )
        return AppReleaseModel(
            name,
            f"{version}/{media_type}",
            release=version,
            media_type=media_type,
            digest=digest,
            size=size,
            manifest_digest="sha256:" + hashlib.sha256(manifest.encode()).hexdigest(),
            created_at=now(),
            push_id=push_id,
        )

    def _write(self, record: AppReleaseModel, visibility: str | None) -> bool:
        """Put the release and count it on its package; False if that release exists."""
        namespace, package = record.package.split("/", 1)
        stamp = record.created_at
        actions: list[Action] = [
            AppPackageModel.release_count.add(1),
            AppPackageModel.updated_at.set(stamp),
            AppPackageModel.created_at.set(AppPackageModel.created_at | stamp),
            AppPackageModel.visibility.set(
                visibility if visibility else AppPackageModel.visibility | "private"
            ),
        ]
        try:
            with TransactWrite(connection=_connection()) as transaction:
                transaction.save(record, condition=AppReleaseModel.release_key.does_not_exist())
                transaction.update(AppPackageModel(namespace, package), actions=actions)
        except TransactWriteError as exc:
            if _cancelled(exc):
                return False
            raise
        return True

    @staticmethod
    def _release(record: AppReleaseModel, visibility: str) -> Release:
        namespace, package = record.package.split("/", 1)
        return Release(
            namespace=namespace,
            package=package,
            release=record.release,
            media_type=record.media_type,
            digest=record.digest,
            size=int(record.size),
            manifest_digest=record.manifest_digest,
            created_at=record.created_at,
            visibility=visibility,
        )


def _summary(package: AppPackageModel, records: list[AppReleaseModel]) -> PackageSummary:
    ordered = sorted(records, key=lambda record: (record.created_at, record.release), reverse=True)
    names = tuple(dict.fromkeys(record.release for record in ordered))
    valid = [name for name in names if VERSION.match(name)]
    return PackageSummary(
        namespace=package.namespace,
        package=package.name,
        releases=names,
        default=max(valid, key=version_key) if valid else names[0],
        visibility=package.visibility,
        created_at=package.created_at,
        updated_at=package.updated_at,
        media_types=tuple(sorted({record.media_type for record in records})),
    )


def _check_names(namespace: str, package: str) -> None:
    if not NAMESPACE_NAME.match(namespace) or not PACKAGE_NAME.match(package):
        raise InvalidUsage(f"invalid repository name: {namespace}/{package}")


def _exists(namespace: str, package: str, release: str, media_type: str) -> PackageExists:
    name = f"{namespace}/{package}"
    return PackageExists(
        f"{name} - {release} - {media_type} exists already ",
        {"package": name, "release": release, "media_type": media_type},
    )


def _missing(namespace: str, package: str, release: str, media_type: str) -> PackageNotFound:
    name = f"{namespace}/{package}"
    return PackageNotFound(
        f"package {name} doesn't exist, v: {release}, type: {media_type}",
        {"package": name, "release": release, "media_type": media_type},
    )


def _cancelled(exc: TransactWriteError) -> bool:
    return getattr(exc, "cause_response_code", None) == "TransactionCanceledException"


def _connection() -> Connection:
    return Connection(region=getattr(AppReleaseModel.Meta, "region", None))


@functools.lru_cache(maxsize=4)
def _organizations(text: str) -> dict[str, Organization]:
    return organizations.parse(text)
