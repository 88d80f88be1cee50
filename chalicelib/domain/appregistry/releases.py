"""Kiln's app registry: releases of packages, each a blob (a tar.gz) under a media type, as
Quay's appregistry (CNR) API keeps them (omps-behaviour.md §14; docs/omps.md).

A release is written once: its record is put with ``attribute_not_exists`` in one transaction
with its package's release counter, so a duplicate is PackageExists and never a clobber (unless
the push forces it, as Quay's ``?force=true``: then it replaces the release). The blob goes to
S3 first, named by its sha256 (the same bytes are one object). With no release given,
``publish`` takes the next version of the one package (§6) and, when a concurrent push took it
first, the next one after that.

Reads follow Quay: a package the caller may not read is refused (403, scope ``pull``), and so is
one that does not exist, unless the caller could create it (then 404)."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib

from chalicelib.adapters.appregistry_models import AppPackageModel, AppReleaseModel
from chalicelib.adapters.artifacts import ArtifactStore, ObjectMissing
from chalicelib.config import Settings
from chalicelib.domain.appregistry import access, manifests, release_store
from chalicelib.domain.appregistry.callers import Caller
from chalicelib.domain.appregistry.errors import (
    InvalidRelease,
    InvalidUsage,
    PackageExists,
    PackageNotFound,
)
from chalicelib.domain.appregistry.release_store import Outcome
from chalicelib.domain.appregistry.versions import (  # noqa: F401 - re-exported
    RELEASE,
    VERSION,
    highest_first,
    next_version,
    precedence,
    valid_release,
    version_key,
)
from chalicelib.domain.omps import organizations
from chalicelib.domain.omps.organizations import Organization

MEDIA_TYPES = ("helm", "kpm", "docker-compose")
PACKAGE_NAME = release_store.PACKAGE_NAME
NAMESPACE_NAME = organizations.ORG_NAME
VISIBILITIES = ("private", "public")
#: attempts at a write when concurrent pushes keep taking the next version or conflicting
ALLOCATION_ATTEMPTS = 50
blob_key = release_store.blob_key


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
    releases: tuple[str, ...]  # highest first, as Quay lists them
    default: str  # the highest release
    visibility: str
    created_at: str
    updated_at: str
    media_types: tuple[str, ...]  # of the default release

    @property
    def name(self) -> str:
        return f"{self.namespace}/{self.package}"


def now() -> str:
    """UTC, to the microsecond (releases pushed within one second keep their order); the API
    shows it to the second (manifests.py)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


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
    def check_push(self, caller: Caller, namespace: str, package: str) -> None:
        """What Quay checks before it reads a push's body: the names, then that the caller may
        create the package (new) or push to it."""
        _check_names(namespace, package)
        existing = release_store.package(namespace, package)
        access.require_write(caller, self.organization(namespace), package, existing is not None)

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
        force: bool = False,
        initial_visibility: str | None = None,
    ) -> Release:
        """Store ``blob`` as ``release`` of the package (None: the next version, §6).

        ``visibility`` sets the package's on this push; ``initial_visibility`` only when the
        push creates the package (default private). ``force`` replaces an existing release."""
        _check_names(namespace, package)
        if media_type not in MEDIA_TYPES:
            raise InvalidUsage(f"Unsupported media type: {media_type}", {"media_type": media_type})
        if release is not None and not valid_release(release):
            raise InvalidRelease(f"Invalid version string: '{release}'", {"version": release})
        for value in (visibility, initial_visibility):
            if value is not None and value not in VISIBILITIES:
                raise InvalidUsage(f"Invalid visibility: {value}", {"visibility": value})
        organization = self.organization(namespace)
        existing = release_store.package(namespace, package)
        access.require_write(caller, organization, package, exists=existing is not None)
        digest = hashlib.sha256(blob).hexdigest()
        if self.store.head(blob_key(digest)) is None:
            self.store.put_bytes(blob_key(digest), blob, "application/x-gzip")
        default = default_release or self.settings.omps_default_release_version
        before = existing.visibility if existing else (initial_visibility or "private")
        shown_visibility = visibility or before
        for attempt in range(ALLOCATION_ATTEMPTS):
            version = release or next_version(release_store.names(namespace, package), default)
            record = release_store.record(
                namespace,
                package,
                version,
                media_type,
                digest,
                len(blob),
                manifests.manifest_digest(media_type, digest, len(blob)),
                now(),
                push_id,
            )
            outcome = release_store.write(record, visibility, initial_visibility)
            if outcome is Outcome.REFUSED and release is not None:
                if not force:
                    raise _exists(namespace, package, version, media_type)
                outcome = release_store.replace(record, visibility)  # REFUSED: deleted since
            if outcome is Outcome.WRITTEN:  # nothing after the write may fail (§15.9)
                return self._release(record, shown_visibility)
            release_store.pause(attempt)  # taken: the next version; a conflict: again
        raise PackageExists(
            f"{namespace}/{package}: no free version after {ALLOCATION_ATTEMPTS} attempts",
            {"package": f"{namespace}/{package}", "release": release, "media_type": media_type},
        )

    def delete(
        self, caller: Caller, namespace: str, package: str, release: str, media_type: str = "helm"
    ) -> Release:
        """Delete one release (the emptied package is kept, as Quay keeps the repository)."""
        organization = self.organization(namespace)
        access.require_token(caller, organization, package)
        existing = release_store.package(namespace, package)
        if existing is None:
            if access.knows_namespace(caller, organization):
                raise _missing(namespace, package, release, media_type)
            raise access.forbidden(namespace, package, "pull", "push")
        access.require_write(caller, organization, package, True, ["pull", "push"], False)
        found = release_store.find(namespace, package, release, media_type)
        if found is None or not release_store.delete(found, now()):
            raise _missing(namespace, package, release, media_type)
        return self._release(found, existing.visibility)

    # -- reads ------------------------------------------------------------------------------
    def releases(
        self, caller: Caller, namespace: str, package: str, media_type: str | None = None
    ) -> list[Release]:
        """The package's releases, newest first; PackageNotFound if it has none (never had,
        or all deleted: what OMPS's delete-all reports as not found)."""
        existing = self._readable(caller, namespace, package, None, media_type)
        if not existing.release_count:
            raise _missing(namespace, package, None, media_type)
        found = [
            self._release(record, existing.visibility)
            for record in release_store.records(namespace, package)
            if media_type is None or record.media_type == media_type
        ]
        return sorted(
            found, key=lambda item: (item.created_at, precedence(item.release)), reverse=True
        )

    def release(
        self, caller: Caller, namespace: str, package: str, release: str, media_type: str
    ) -> Release:
        """One release of one media type; ``default``: the package's highest release."""
        existing = self._readable(caller, namespace, package, release, media_type)
        if release == "default":
            names = [
                record.release
                for record in release_store.records(namespace, package)
                if record.media_type == media_type
            ]
            release = highest_first(names)[0] if names else release
        found = release_store.find(namespace, package, release, media_type)
        if found is None:
            raise _missing(namespace, package, release, media_type)
        return self._release(found, existing.visibility)

    def pull(
        self, caller: Caller, namespace: str, package: str, release: str, media_type: str
    ) -> tuple[Release, bytes]:
        """A release and its blob."""
        found = self.release(caller, namespace, package, release, media_type)
        try:
            return found, self.store.read(blob_key(found.digest))
        except ObjectMissing:
            raise _missing(namespace, package, release, media_type) from None

    def blob(self, caller: Caller, namespace: str, package: str, digest: str) -> bytes:
        """A blob of one of the package's releases, by its sha256 hex."""
        self._readable(caller, namespace, package, digest, None)
        if not any(record.digest == digest for record in release_store.records(namespace, package)):
            raise _missing(namespace, package, digest, None)
        try:
            return self.store.read(blob_key(digest))
        except ObjectMissing:
            raise _missing(namespace, package, digest, None) from None

    def packages(
        self,
        caller: Caller,
        namespace: str,
        media_type: str | None = None,
        query: str | None = None,
    ) -> list[PackageSummary]:
        """The namespace's packages with at least one release (of ``media_type``) that the
        caller may read, by name; ``query``: only those whose name holds it (any case)."""
        organization = self.organization(namespace)
        private = access.can_read(caller, organization, "private")
        found = []
        for package in release_store.packages(namespace):
            if not package.release_count or (query and query.lower() not in package.name.lower()):
                continue
            if package.visibility != "public" and not private:
                continue
            records = release_store.records(namespace, package.name)
            if media_type is not None:
                records = [record for record in records if record.media_type == media_type]
            if records:
                found.append(_summary(package, records))
        return found

    def next_release(self, caller: Caller, namespace: str, package: str, default: str) -> str:
        """The version a push without one gets now (§6); reads the one package."""
        existing = release_store.package(namespace, package)
        if existing is None or not existing.release_count:
            return default
        access.require_read(caller, self.organization(namespace), package, existing.visibility)
        return next_version(release_store.names(namespace, package), default)

    def release_names(self, caller: Caller, namespace: str, package: str) -> list[str]:
        """Every release of the package (valid or not), newest first."""
        return [found.release for found in self.releases(caller, namespace, package)]

    # -- helpers ----------------------------------------------------------------------------
    def _readable(
        self,
        caller: Caller,
        namespace: str,
        package: str,
        release: str | None,
        media_type: str | None,
    ) -> AppPackageModel:
        """The package, if the caller may read it; else 403, or 404 to those who may know."""
        organization = self.organization(namespace)
        existing = release_store.package(namespace, package)
        if existing is None:
            if access.knows_namespace(caller, organization):
                raise _missing(namespace, package, release, media_type)
            raise access.forbidden(namespace, package, "pull")
        access.require_read(caller, organization, package, existing.visibility)
        return existing

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
    names = tuple(highest_first(record.release for record in records))
    return PackageSummary(
        namespace=package.namespace,
        package=package.name,
        releases=names,
        default=names[0],
        visibility=package.visibility,
        created_at=package.created_at,
        updated_at=package.updated_at,
        media_types=tuple(
            sorted({record.media_type for record in records if record.release == names[0]})
        ),
    )


def _check_names(namespace: str, package: str) -> None:
    if not NAMESPACE_NAME.match(namespace) or not PACKAGE_NAME.match(package):
        raise InvalidUsage(
            f"invalid repository name: {namespace}/{package}", {"package": f"{namespace}/{package}"}
        )


def _exists(namespace: str, package: str, release: str, media_type: str) -> PackageExists:
    name = f"{namespace}/{package}"
    return PackageExists(
        f"{name} - {release} - {media_type} exists already ",
        {"package": name, "release": release, "media_type": media_type},
    )


def _missing(
    namespace: str, package: str, release: str | None, media_type: str | None
) -> PackageNotFound:
    """Quay's message: ``package ns/pkg doesn't exist, v: 1.0.0, type: helm`` (None when
    the lookup named no release or media type)."""
    name = f"{namespace}/{package}"
    return PackageNotFound(
        f"package {name} doesn't exist, v: {release}, type: {media_type}",
        {"package": name, "release": release, "media_type": media_type},
    )


@functools.lru_cache(maxsize=4)
def _organizations(text: str) -> dict[str, Organization]:
    return organizations.parse(text)
