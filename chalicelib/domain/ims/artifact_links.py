"""Which objects of the artifact bucket a tenant's IMS records may link to, read through, build
from and change.

A link (a recipe's archive, an image's manifest, the artifacts a manifest lists) may name only an
object the record's tenant is entitled to:

- its upload area, ``uploads/<tenant>/...`` (where a tenant puts archives and manifests it
  registers with IMS's own ``link``; on AWS, an IAM grant per tenant);
- the objects of one of its own records: ``recipes/<id>/...`` of its recipes and
  ``images/<id>/...`` of its images (live or soft-deleted);
- its build cache, ``build-cache/<tenant>/...``: the artifacts a build served from the cache
  lists (docs/build-cache.md); read only: holds, never a record, decide when they go.

Anything else — another tenant's objects, Glance data, job logs, control objects — is refused
with one message whether or not the object exists. Lifecycle operations (tag, untag, delete) go
further still: they touch only a record's *own* objects, under its own prefix or in its tenant's
upload area, never another record's.
"""

from __future__ import annotations

from typing import Any

from chalicelib import safe_json
from chalicelib.adapters import records
from chalicelib.adapters.artifacts import BUILD_CACHE, ArtifactStore
from chalicelib.adapters.models import ImageModel, RecipeModel
from chalicelib.errors import Invalid

UPLOADS = "uploads"
#: key prefix -> the record kind whose objects live under "<prefix>/<id>/"
_RECORD_PREFIXES: dict[str, type[Any]] = {"recipes": RecipeModel, "images": ImageModel}


def upload_area(tenant: str) -> str:
    return f"{UPLOADS}/{tenant}/"


def entitled_key(store: ArtifactStore, path: str, tenant: str, field: str = "link") -> str:
    """The key of ``path`` (an s3:// URL) if ``tenant`` may link it; else Invalid (422), saying
    nothing of whether such an object exists."""
    key = store.key_of(path)
    if not may_link(key, tenant):
        raise Invalid(
            f"{field}.path {path} is not an artifact this tenant may link: use its upload area "
            f"s3://{store.bucket}/{upload_area(tenant)} or its own recipes' and images' objects",
            {field: ["Not an artifact of this tenant."]},
        )
    return key


def may_link(key: str, tenant: str) -> bool:
    parts = key.split("/")
    if len(parts) < 3 or any(part in ("", ".", "..") for part in parts):
        return False  # no empty or dot segments: a presigned URL must name exactly this key
    if parts[0] in (UPLOADS, BUILD_CACHE):
        return parts[1] == tenant
    model = _RECORD_PREFIXES.get(parts[0])
    if model is None:
        return False
    record = records.find(model, parts[1])
    return record is not None and record.tenant == tenant


def own_objects(key: str, tenant: str, own_prefix: str) -> bool:
    """Whether a lifecycle operation on a record (with ``own_prefix``, e.g. "images/<id>/") may
    touch ``key``: under that prefix, or in the record's tenant's upload area."""
    if not may_link(key, tenant):
        return False
    return key.startswith(own_prefix) or key.startswith(upload_area(tenant))


def manifest_artifacts(store: ArtifactStore, manifest_key: str, tenant: str) -> list[Any]:
    """The artifacts the manifest at ``manifest_key`` lists that ``tenant`` may read (see
    ``listed_artifacts``). A manifest that is not JSON lists nothing."""
    try:
        return listed_artifacts(store, safe_json.loads(store.read(manifest_key)), tenant)
    except safe_json.MalformedJSON:
        return []


def listed_artifacts(store: ArtifactStore, manifest: Any, tenant: str) -> list[dict[str, Any]]:
    """``[{"type", "key", "sha256", "entry"}]`` for each artifact ``manifest`` lists in this
    bucket that ``tenant`` may read (``entry``: the manifest's own object for it). Entries
    naming anything else are left out."""
    listed = manifest.get("artifacts") if isinstance(manifest, dict) else None
    found = []
    for entry in listed if isinstance(listed, list) else []:
        link = entry.get("link") if isinstance(entry, dict) else None
        path = link.get("path") if isinstance(link, dict) else None
        key = store.own_key(path) if isinstance(path, str) else None
        if key is not None and may_link(key, tenant):
            sha256 = entry.get("sha256")
            found.append({"type": entry.get("type"), "key": key, "sha256": sha256, "entry": entry})
    return found
