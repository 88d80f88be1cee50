"""The OMPS push (omps-behaviour.md §3), for an uploaded zip and a Koji build's archive alike,
in upstream's order; the first failure ends it:

1. the ``Authorization`` header is present (an empty value too);
2. the organization's options (any name; an unknown one gets the defaults);
3. the archive is checked and extracted into a temporary directory (archive.py);
4. ``extracted_files``;
5. the package name (package_scan.py, with the org's suffix); in v2 it is the repo;
6. the version: an explicit one checked, else the one package's next one looked up -- the
   first call to the registry, so a caller it refuses gets 403 ``QuayAuthorizationError``;
7. registry replacement, then CSV annotations (transforms.py);
8. operator-courier's validation and bundle (courier.py), then the release published in Kiln's
   registry: without an explicit version the registry allocates the next one atomically, and
   the answer reports the one it took (concurrent pushes each get their own, §15.4);
9. 200 ``{"organization", "repo", "version", "extracted_files"}`` (+ ``"nvr"``).

Once the release is stored nothing answers 5xx (§15.9, a client retrying its POST would push
a second release): the uploaded zip (``omps/pushes/<push_id>.zip``) and the immutable push
record are written after it, and a failure to write either is logged, not answered."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import tempfile
import uuid
from typing import Any

from chalicelib import observability
from chalicelib.adapters.appregistry_models import OmpsPushModel
from chalicelib.config import Settings
from chalicelib.domain.appregistry import callers
from chalicelib.domain.appregistry.callers import Caller
from chalicelib.domain.appregistry.errors import (
    PackageNotFound,
    RegistryError,
    RegistryForbidden,
    UnauthorizedAccess,
)
from chalicelib.domain.appregistry.releases import AppRegistry, Release
from chalicelib.domain.omps import archive, courier, package_scan, transforms, versions
from chalicelib.domain.omps.courier import Bundle
from chalicelib.domain.omps.errors import (
    OMPSAuthorizationHeaderRequired,
    OmpsError,
    QuayAuthorizationError,
    QuayCourierError,
    QuayPackageError,
)

#: the media type OMPS publishes under
MEDIA_TYPE = "helm"


def require_authorization(header: str | None) -> str:
    """The request's Authorization header, verbatim; only its presence is checked (§3.1)."""
    if header is None:
        raise OMPSAuthorizationHeaderRequired("Request contains no 'Authorization' header")
    return header


@dataclasses.dataclass(frozen=True)
class PushRequest:
    """One push: ``repo`` None is v2 (the repo is the package name, suffixed)."""

    authorization: str
    organization: str
    repo: str | None
    version: str | None
    archive: bytes
    nvr: str | None = None


def push(request: PushRequest, registry: AppRegistry, settings: Settings) -> dict[str, Any]:
    """Publish the archive's operator manifests; the 200 body."""
    authorization = require_authorization(request.authorization)
    organization = registry.organization(request.organization)
    org = organization.name
    with tempfile.TemporaryDirectory(prefix="omps-push-", ignore_cleanup_errors=True) as workdir:
        files = archive.extract(
            request.archive,
            workdir,
            max_bytes=settings.omps_max_uncompressed_bytes,
            max_entries=settings.omps_max_entries,
        )
        package = package_scan.package_name(workdir, organization.package_name_suffix)
        repo = package if request.repo is None else request.repo
        caller: Caller | None = None
        if request.version is not None:
            version: str | None = versions.check_version(request.version)
        else:
            version = None
            caller = _caller_for_lookup(authorization, settings, org, repo)
            _look_up_next(caller, registry, settings, org, repo)
        transforms.replace_registry(workdir, organization.replace_registry)
        transforms.csv_annotations(workdir, organization.csv_annotations, package)
        bundle = courier.build_bundle(workdir, repo)
    if caller is None:
        caller = _caller_for_publish(authorization, settings)
    push_id = str(uuid.uuid4())
    release = _publish(
        registry,
        caller,
        org,
        repo,
        bundle.blob,
        release=version,
        visibility="public" if organization.public else None,
        push_id=push_id,
    )
    _keep(registry, request, push_id, caller, release, files, bundle)
    body: dict[str, Any] = {
        "organization": request.organization,
        "repo": repo,
        "version": release.release,
        "extracted_files": files,
    }
    if request.nvr is not None:
        body["nvr"] = request.nvr
    return body


def _lookup_failed(org: str, repo: str, error: RegistryError) -> OmpsError:
    """§6: a refused caller is 403 QuayAuthorizationError, anything else QuayPackageError."""
    message = f"Cannot retrieve information about package {org}/{repo}: {error.detail}"
    if isinstance(error, (RegistryForbidden, UnauthorizedAccess)):
        return QuayAuthorizationError(message, error.body())
    return QuayPackageError(message)


def _caller_for_lookup(authorization: str, settings: Settings, org: str, repo: str) -> Caller:
    try:
        return callers.caller_from(authorization, settings)
    except RegistryError as error:
        raise _lookup_failed(org, repo, error) from error


def _look_up_next(
    caller: Caller, registry: AppRegistry, settings: Settings, org: str, repo: str
) -> str:
    """The version a push without one would get now (§6); the registry allocates it again,
    atomically, when it publishes."""
    try:
        return registry.next_release(caller, org, repo, settings.omps_default_release_version)
    except PackageNotFound:
        return settings.omps_default_release_version
    except RegistryError as error:
        raise _lookup_failed(org, repo, error) from error


def _push_failed(error: RegistryError) -> OmpsError:
    """§7: a refused caller is 403 QuayAuthorizationError, anything else (a duplicate
    release, an invalid name) 500 QuayCourierError; both quote the registry's answer."""
    message = f"Failed to push manifest: {error.detail}"
    if isinstance(error, (RegistryForbidden, UnauthorizedAccess)):
        return QuayAuthorizationError(message, error.body())
    return QuayCourierError(message, error.body())


def _caller_for_publish(authorization: str, settings: Settings) -> Caller:
    try:
        return callers.caller_from(authorization, settings)
    except RegistryError as error:
        raise _push_failed(error) from error


def _publish(
    registry: AppRegistry,
    caller: Caller,
    org: str,
    repo: str,
    blob: bytes,
    *,
    release: str | None,
    visibility: str | None,
    push_id: str,
) -> Release:
    try:
        return registry.publish(
            caller,
            org,
            repo,
            blob,
            release=release,
            media_type=MEDIA_TYPE,
            visibility=visibility,
            push_id=push_id,
        )
    except RegistryError as error:
        raise _push_failed(error) from error


def zip_key(push_id: str) -> str:
    return f"omps/pushes/{push_id}.zip"


def _keep(
    registry: AppRegistry,
    request: PushRequest,
    push_id: str,
    caller: Caller,
    release: Release,
    files: list[str],
    bundle: Bundle,
) -> None:
    """The uploaded zip and the push record, after the release: logged, never raised."""
    log = observability.logger()
    key = zip_key(push_id)
    try:
        registry.store.put_bytes(key, request.archive, "application/zip")
    except Exception:
        log.exception("could not keep the pushed zip", extra={"push_id": push_id})
    try:
        OmpsPushModel(
            push_id,
            subject=caller.subject,
            tenant=caller.tenant,
            organization=release.namespace,
            repo=release.package,
            version=release.release,
            nvr=request.nvr,
            zip_sha256=hashlib.sha256(request.archive).hexdigest(),
            zip_key=key,
            blob_digest=release.digest,
            extracted_files=files,
            validation=bundle.validation,
            created=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        ).save(condition=OmpsPushModel.push_id.does_not_exist())
    except Exception:
        log.exception("could not record the push", extra={"push_id": push_id})
    log.info(
        "omps push",
        extra={
            "push_id": push_id,
            "package": release.name,
            "release": release.release,
            "tenant": caller.tenant,
            "nested": bundle.nested,
        },
    )
