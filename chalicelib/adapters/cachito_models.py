"""PynamoDB models of the Cachito face: requests (integer ids, as Cachito's), the id counter
and the claims that make a retried POST return the request it already created.

Lists read indexes, newest id first: ``by_tenant`` (a user's requests), ``by_kind`` (every
request, for admins and workers). ``by_expiry`` is sparse: only requests that may still go
stale carry ``live_state`` (their state), ordered by ``updated``, so the schedule reads just
those past their lifetime. Records that race carry a VersionAttribute.
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    JSONAttribute,
    NumberAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.adapters.sized_model import SizedModel

#: the one partition of ``by_kind``
REQUEST_KIND = "cachito-request"


class ByTenant(GlobalSecondaryIndex[Any]):
    class Meta:
        index_name = "by_tenant"
        projection = AllProjection()

    tenant = UnicodeAttribute(hash_key=True)
    id = NumberAttribute(range_key=True)


class ByKind(GlobalSecondaryIndex[Any]):
    class Meta:
        index_name = "by_kind"
        projection = AllProjection()

    kind = UnicodeAttribute(hash_key=True)
    id = NumberAttribute(range_key=True)


class ByExpiry(GlobalSecondaryIndex[Any]):
    """Sparse: requests not yet stale, by state, oldest ``updated`` first."""

    class Meta:
        index_name = "by_expiry"
        projection = AllProjection()

    live_state = UnicodeAttribute(hash_key=True)
    updated = UnicodeAttribute(range_key=True)


class CachitoRequestModel(SizedModel):
    class Meta:
        table_name = "kiln-cachito-requests"

    id = NumberAttribute(hash_key=True)
    kind = UnicodeAttribute(default=REQUEST_KIND)
    tenant = UnicodeAttribute()
    by_tenant = ByTenant()
    by_kind = ByKind()
    by_expiry = ByExpiry()
    created = UnicodeAttribute()  # naive UTC ISO 8601, 6 fractional digits, as Cachito shows it
    updated = UnicodeAttribute()
    repo = UnicodeAttribute()
    ref = UnicodeAttribute()
    pkg_managers = JSONAttribute(default=list)  # as requested, sorted
    packages_spec = JSONAttribute(default=dict)  # the request's "packages" object
    flags = JSONAttribute(default=list)  # sorted names
    dependency_replacements = JSONAttribute(default=list)
    user = UnicodeAttribute()  # on whose behalf (the submitter unless a representative says)
    submitted_by = UnicodeAttribute(null=True)  # the representative who sent it, if any
    state = UnicodeAttribute(default="in_progress")
    state_reason = UnicodeAttribute(default="The request was initiated")
    live_state = UnicodeAttribute(null=True)  # = state until stale, then removed
    state_history = JSONAttribute(default=list)  # [{state, state_reason, updated}], oldest first
    error_origin = UnicodeAttribute(null=True)
    error_type = UnicodeAttribute(null=True)
    environment_variables = JSONAttribute(default=dict)  # {NAME: {"value", "kind"}}
    packages_count = NumberAttribute(null=True)
    dependencies_count = NumberAttribute(null=True)
    job_id = UnicodeAttribute(null=True)  # the build-core job that runs it
    bundle_key = UnicodeAttribute(null=True)
    bundle_sha256 = UnicodeAttribute(null=True)  # hex, recorded once when complete
    bundle_etag = UnicodeAttribute(null=True)  # what S3 said when it was recorded
    bundle_size = NumberAttribute(null=True)
    packages_key = UnicodeAttribute(null=True)  # packages.json: packages, env vars, config files
    configuration_files_key = UnicodeAttribute(null=True)  # set by a worker's POST
    log_key = UnicodeAttribute(null=True)
    version = VersionAttribute()


class CounterModel(Model):
    """Named counters (``cachito-request``: the last request id given out), bumped with an
    atomic ADD."""

    class Meta:
        table_name = "kiln-counters"

    name = UnicodeAttribute(hash_key=True)
    value = NumberAttribute(default=0)


class CachitoSubmissionModel(Model):
    """A POST's claim: the hash of (caller, body, time window) -> the request it created. The
    conditional put of a claim is what makes a retried POST return the same request."""

    class Meta:
        table_name = "kiln-cachito-submissions"

    key = UnicodeAttribute(hash_key=True)
    request_id = NumberAttribute()
    created = UnicodeAttribute()
    expires = NumberAttribute(null=True)  # epoch seconds: DynamoDB's TTL deletes the claim then


#: table -> the attribute DynamoDB's time to live reads (epoch seconds), for tables that have one
TTL_ATTRIBUTES = {CachitoSubmissionModel: "expires"}


CACHITO_MODELS: tuple[type[Model], ...] = (
    CachitoRequestModel,
    CounterModel,
    CachitoSubmissionModel,
)
