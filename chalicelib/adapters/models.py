"""PynamoDB models: one table per record kind.

Every list the API offers reads an index: ``by_tenant`` (tenant/kind, created) for a user's
records, ``by_kind`` (kind, created) for an admin's view of all. A soft-deleted record is filed
under the kind ``deleted-<kind>``, so live and deleted lists are separate index partitions.
Never Scan on a request path. Records that race carry a VersionAttribute.
Sparse indexes hold only the records a background pass must find: ``unfinished`` jobs,
jobs ``awaiting_node``, and records with a lifecycle operation ``pending``.
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.adapters.appregistry_models import APPREGISTRY_MODELS
from chalicelib.adapters.build_cache_models import BUILD_CACHE_MODELS
from chalicelib.adapters.cachito_models import CACHITO_MODELS, TTL_ATTRIBUTES
from chalicelib.adapters.glance_models import GLANCE_MODELS
from chalicelib.adapters.sized_model import SizedModel


class ByTenant(GlobalSecondaryIndex["Any"]):
    class Meta:
        index_name = "by_tenant"
        projection = AllProjection()

    tenant_kind = UnicodeAttribute(hash_key=True)
    created_id = UnicodeAttribute(range_key=True)


class ByKind(GlobalSecondaryIndex["Any"]):
    class Meta:
        index_name = "by_kind"
        projection = AllProjection()

    kind = UnicodeAttribute(hash_key=True)
    created_id = UnicodeAttribute(range_key=True)


class Unfinished(GlobalSecondaryIndex["Any"]):
    """Sparse: only jobs that have not ended carry ``unfinished``, so cleanup reads just those."""

    class Meta:
        index_name = "unfinished"
        projection = AllProjection()

    unfinished = UnicodeAttribute(hash_key=True)
    created_id = UnicodeAttribute(range_key=True)


class AwaitingNode(GlobalSecondaryIndex["Any"]):
    """Sparse: jobs no registered, healthy build node serves yet (not dispatched)."""

    class Meta:
        index_name = "awaiting_node"
        projection = AllProjection()

    awaiting_node = UnicodeAttribute(hash_key=True)
    created_id = UnicodeAttribute(range_key=True)


class Pending(GlobalSecondaryIndex["Any"]):
    """Sparse: records with a lifecycle operation (delete, undelete, purge) begun, not done."""

    class Meta:
        index_name = "pending"
        projection = AllProjection()

    pending_kind = UnicodeAttribute(hash_key=True)
    created_id = UnicodeAttribute(range_key=True)


class TenantRecord(SizedModel):
    """Fields every tenant-owned record has."""

    id = UnicodeAttribute(hash_key=True)
    tenant = UnicodeAttribute()
    kind = UnicodeAttribute()  # "recipe", or "deleted-recipe" once soft-deleted
    tenant_kind = UnicodeAttribute()  # tenant + "/" + kind: the by_tenant partition
    created = UnicodeAttribute()  # ISO 8601 UTC, as IMS shows it
    created_id = UnicodeAttribute()  # created + "#" + id: a unique, time-ordered sort key


class LifecycleRecord(TenantRecord):
    """A record IMS v3 soft-deletes: recipes, images, public keys."""

    lifecycle = UnicodeAttribute(default="live")  # see domain/states.py RECORD_TRANSITIONS
    deleted = UnicodeAttribute(null=True)  # when it was soft-deleted
    pending = UnicodeAttribute(null=True)  # the operation begun and not yet finished
    pending_kind = UnicodeAttribute(null=True)  # the base kind while ``pending``, else absent
    pending_since = NumberAttribute(null=True)  # epoch seconds


class RecipeModel(LifecycleRecord):
    class Meta:
        table_name = "kiln-recipes"

    by_tenant = ByTenant()
    by_kind = ByKind()
    by_pending = Pending()
    name = UnicodeAttribute()
    recipe_type = UnicodeAttribute()
    linux_distribution = UnicodeAttribute()
    arch = UnicodeAttribute(default="x86_64")
    require_dkms = BooleanAttribute(default=False)
    template_dictionary = JSONAttribute(default=list)
    link = JSONAttribute(null=True)  # {"path", "etag", "type"}
    archive_status = UnicodeAttribute(default="awaiting_upload")
    archive_sha256 = UnicodeAttribute(null=True)
    archive_size = NumberAttribute(null=True)
    archive_reason = UnicodeAttribute(null=True)
    archive_sequencer = UnicodeAttribute(null=True)  # the S3 event of the upload last checked
    version = VersionAttribute()


class PublicKeyModel(LifecycleRecord):
    class Meta:
        table_name = "kiln-public-keys"

    by_tenant = ByTenant()
    by_kind = ByKind()
    by_pending = Pending()
    name = UnicodeAttribute()
    public_key = UnicodeAttribute()
    version = VersionAttribute()


class ImageModel(LifecycleRecord):
    class Meta:
        table_name = "kiln-images"

    by_tenant = ByTenant()
    by_kind = ByKind()
    by_pending = Pending()
    name = UnicodeAttribute()
    arch = UnicodeAttribute(null=True)
    link = JSONAttribute(null=True)
    metadata = JSONAttribute(default=dict)
    source_job_id = UnicodeAttribute(null=True)
    reproducibility = JSONAttribute(null=True)  # its last rebuild check (ims/reproducibility)
    version = VersionAttribute()


class JobModel(TenantRecord):
    """A build job, whichever face made it: the core's fields, the job's kind (which face's
    code handles it: chalicelib/domain/job_kinds.py) and that face's ``payload``."""

    class Meta:
        table_name = "kiln-jobs"

    by_tenant = ByTenant()
    by_kind = ByKind()
    by_unfinished = Unfinished()
    by_awaiting_node = AwaitingNode()
    unfinished = UnicodeAttribute(null=True)  # "job" until the job ends, then removed
    awaiting_node = UnicodeAttribute(null=True)  # "job" while it waits for a node's free slot
    job_kind = UnicodeAttribute()  # e.g. ims-create, ims-customize, compose-image
    payload = JSONAttribute(default=dict)  # the face's own fields; only its code reads them
    job_type = UnicodeAttribute()  # what the host runs: create or customize
    arch = UnicodeAttribute(default="x86_64")
    recipe_type = UnicodeAttribute(null=True)
    status = UnicodeAttribute(default="creating")
    # [[status, ISO 8601 UTC when it began], ...] after "creating" (which began at ``created``)
    status_history = JSONAttribute(default=list)
    status_reason = UnicodeAttribute(null=True)
    failure_code = UnicodeAttribute(null=True)  # host_protocol.FailureCode name, once in error
    planned_image_id = UnicodeAttribute()  # where the host publishes (images/<id>/)
    slot = UnicodeAttribute(null=True)  # the build node slot reserved for it (capacity.py)
    build_node = UnicodeAttribute(null=True)
    build_log_key = UnicodeAttribute(null=True)
    finished = UnicodeAttribute(null=True)
    host_started = NumberAttribute(null=True)  # epoch seconds, the host's first progress report
    host_answered = NumberAttribute(null=True)  # epoch seconds, when the host sent its result
    ssh_containers = JSONAttribute(default=list)  # [{name, jail, status, connection_info}]
    cancelled = BooleanAttribute(default=False)
    upload_status = JSONAttribute(null=True)  # {"type", "status", "options"} from the host
    artifacts = JSONAttribute(null=True)  # [{"key", "type", "size", "sha256"}] once built
    # the request as its user sent it (the provenance's externalParameters)
    request = JSONAttribute(null=True)
    fresh_build = BooleanAttribute(default=False)  # never served from the build cache
    # {"stages": {stage: seconds}, "total_seconds", "instance_seconds", "cost", "cache"}
    timing = JSONAttribute(null=True)
    cache = JSONAttribute(null=True)  # BuildOutput.cache once it ended in success
    version = VersionAttribute()


class ComposeModel(TenantRecord):
    """A composer compose: the request as sent and one job per image request."""

    class Meta:
        table_name = "kiln-composes"

    by_tenant = ByTenant()
    by_kind = ByKind()
    distribution = UnicodeAttribute()
    request = JSONAttribute()
    job_ids = JSONAttribute(default=list)  # in image-request order
    image_types = JSONAttribute(default=list)  # in image-request order
    recipes = JSONAttribute(default=list)  # the recipe generated for each image request
    # a Koji compose: its target, the reserved build (build_id, token), init, import_job_id
    koji = JSONAttribute(null=True)
    version = VersionAttribute()


class BuildNodeModel(SizedModel):
    """A build host (IMS 'remote build node'), keyed by its xname."""

    class Meta:
        table_name = "kiln-build-nodes"

    xname = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute(default="build-node")
    created_id = UnicodeAttribute()
    by_kind = ByKind()
    arch = UnicodeAttribute(null=True)
    recipe_types = JSONAttribute(default=list)
    job_types = JSONAttribute(default=list)
    accepting = BooleanAttribute(default=False)  # the host says it takes work
    last_heartbeat = NumberAttribute(default=0)  # epoch seconds; 0 = never heard from
    current_job = UnicodeAttribute(null=True)
    registered = BooleanAttribute(default=False)  # an admin registered it: it may take jobs
    registered_at = UnicodeAttribute(null=True)
    slots = NumberAttribute(default=1)  # jobs it runs at once (its heartbeat says)
    version = VersionAttribute()  # heartbeats race with an admin's (de)registration


class NodeSlotModel(SizedModel):
    """One build slot of a node, taken by one job: a conditional put reserves it (no two jobs
    hold a slot), a conditional delete by that job releases it (domain/builds/capacity.py)."""

    class Meta:
        table_name = "kiln-node-slots"

    slot = UnicodeAttribute(hash_key=True)  # "<xname>#<index>"
    kind = UnicodeAttribute(default="node-slot")
    created_id = UnicodeAttribute()  # reserved time + "#" + slot
    by_kind = ByKind()
    xname = UnicodeAttribute()
    job_id = UnicodeAttribute()


ALL_MODELS: tuple[type[Model], ...] = (
    RecipeModel,
    PublicKeyModel,
    ImageModel,
    JobModel,
    ComposeModel,
    BuildNodeModel,
    NodeSlotModel,
    *GLANCE_MODELS,
    *CACHITO_MODELS,
    *APPREGISTRY_MODELS,
    *BUILD_CACHE_MODELS,
)


def bind_tables(prefix: str, region: str) -> None:
    """Point every model at this deployment's tables (names are '<prefix>-<kind>')."""
    for model in ALL_MODELS:
        base = model.Meta.table_name.split("-", 1)[1]
        model.Meta.table_name = f"{prefix}-{base}"
        model.Meta.region = region
        model._connection = None  # re-create with the new settings


def time_to_live() -> dict[str, str]:
    """Table name -> the attribute DynamoDB's TTL deletes its items by (bound tables)."""
    return {model.Meta.table_name: name for model, name in TTL_ATTRIBUTES.items()}


def _hash_first(key_schema: list[Any]) -> list[Any]:
    """DynamoDB takes a key schema only as [partition (HASH), sort (RANGE)]; PynamoDB lists
    them in attribute order (moto and cfn-lint accept either, a real CreateTable does not)."""
    return sorted(key_schema, key=lambda key: key["KeyType"] != "HASH")


def table_schemas() -> list[dict[str, Any]]:
    """CreateTable arguments for every model: the one definition local and CDK both read."""
    schemas = []
    for model in ALL_MODELS:
        schema = model._get_schema()
        table: dict[str, Any] = {
            "TableName": model.Meta.table_name,
            "AttributeDefinitions": schema["attribute_definitions"],
            "KeySchema": _hash_first(schema["key_schema"]),
            "BillingMode": "PAY_PER_REQUEST",
        }
        indexes = [
            {
                "IndexName": index["index_name"],
                "KeySchema": _hash_first(index["key_schema"]),
                "Projection": index["projection"],
            }
            for index in schema.get("global_secondary_indexes", [])
        ]
        if indexes:  # DynamoDB refuses an empty list
            table["GlobalSecondaryIndexes"] = indexes
        schemas.append(table)
    return schemas
