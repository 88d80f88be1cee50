"""PynamoDB models of Kiln's app registry and the OMPS face (docs/omps.md).

- namespaces: who claimed an organization with its first push;
- packages: one per namespace/name (a namespace's list is a Query on its hash key), with the
  count of its releases, bumped in the same transaction as a release is written or deleted;
- releases: one per package, release and media type; written with ``attribute_not_exists``,
  so a release is never overwritten and two pushes never get the same version;
- pushes: the immutable record of each OMPS push.
"""

from __future__ import annotations

from pynamodb.attributes import JSONAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from chalicelib.adapters.sized_model import SizedModel


class AppNamespaceModel(Model):
    class Meta:
        table_name = "kiln-app-namespaces"

    namespace = UnicodeAttribute(hash_key=True)
    owner_tenant = UnicodeAttribute()
    created = UnicodeAttribute()


class AppPackageModel(Model):
    class Meta:
        table_name = "kiln-app-packages"

    namespace = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute(range_key=True)
    visibility = UnicodeAttribute(default="private")
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    release_count = NumberAttribute(default=0)


class AppReleaseModel(Model):
    class Meta:
        table_name = "kiln-app-releases"

    package = UnicodeAttribute(hash_key=True)  # "<namespace>/<name>"
    release_key = UnicodeAttribute(range_key=True)  # "<release>/<media_type>"
    release = UnicodeAttribute()
    media_type = UnicodeAttribute()
    digest = UnicodeAttribute()  # sha256 hex of the blob (tar.gz)
    size = NumberAttribute()
    manifest_digest = UnicodeAttribute()
    created_at = UnicodeAttribute()  # "YYYY-MM-DDTHH:MM:SS.ffffff", UTC
    push_id = UnicodeAttribute(null=True)


class OmpsPushModel(SizedModel):
    class Meta:
        table_name = "kiln-omps-pushes"

    push_id = UnicodeAttribute(hash_key=True)
    subject = UnicodeAttribute()
    tenant = UnicodeAttribute()
    organization = UnicodeAttribute()
    repo = UnicodeAttribute()
    version = UnicodeAttribute()
    nvr = UnicodeAttribute(null=True)
    zip_sha256 = UnicodeAttribute()
    zip_key = UnicodeAttribute()
    blob_digest = UnicodeAttribute()
    extracted_files = JSONAttribute(default=list)
    validation = JSONAttribute(default=dict)  # operator-courier's {"errors", "warnings"}
    created = UnicodeAttribute()


APPREGISTRY_MODELS: tuple[type[Model], ...] = (
    AppNamespaceModel,
    AppPackageModel,
    AppReleaseModel,
    OmpsPushModel,
)
