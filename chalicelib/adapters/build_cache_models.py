"""PynamoDB models of the content-addressed build cache (docs/build-cache.md).

``BuildCacheModel``: one entry per tenant and resolved-plan digest, naming the set of
artifacts (``set_prefix``) an earlier build of that plan published. ``by_last_used`` (kind,
last_used) is the eviction's index: the least recently used first, and the sum of the sizes.

``ArtifactHoldModel``: who still needs a set's objects: the entry (``entry``; ``evicted`` for
a while after its eviction), and each job whose records point at them (``job:<job_id>``). A
set's objects are deleted only when its last hold goes. ``by_holder`` finds a job's holds.
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import JSONAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.adapters.sized_model import SizedModel

#: the one partition of ``by_last_used``
ENTRY_KIND = "build-cache"


class ByLastUsed(GlobalSecondaryIndex[Any]):
    class Meta:
        index_name = "by_last_used"
        projection = AllProjection()

    kind = UnicodeAttribute(hash_key=True)
    last_used = NumberAttribute(range_key=True)


class ByHolder(GlobalSecondaryIndex[Any]):
    class Meta:
        index_name = "by_holder"
        projection = AllProjection()

    holder = UnicodeAttribute(hash_key=True)
    set_prefix = UnicodeAttribute(range_key=True)


class BuildCacheModel(SizedModel):
    class Meta:
        table_name = "kiln-build-cache"

    id = UnicodeAttribute(hash_key=True)  # "<tenant>/<key>"
    kind = UnicodeAttribute(default=ENTRY_KIND)
    by_last_used = ByLastUsed()
    tenant = UnicodeAttribute()
    key = UnicodeAttribute()  # the resolved plan's sha256
    set_prefix = UnicodeAttribute()  # build-cache/<tenant>/<key>/<job_id>/
    artifacts = JSONAttribute(default=list)  # manifest.json entries of the job that built it
    size = NumberAttribute(default=0)  # bytes, the artifacts together
    created = UnicodeAttribute()
    last_used = NumberAttribute()  # epoch seconds: made, or last served
    hits = NumberAttribute(default=0)
    source_job = UnicodeAttribute()


class ArtifactHoldModel(SizedModel):
    class Meta:
        table_name = "kiln-artifact-holds"

    set_prefix = UnicodeAttribute(hash_key=True)
    holder = UnicodeAttribute(range_key=True)  # "entry", "evicted" or "job:<job_id>"
    by_holder = ByHolder()
    tenant = UnicodeAttribute()
    since = NumberAttribute()  # epoch seconds


BUILD_CACHE_MODELS: tuple[type[Model], ...] = (BuildCacheModel, ArtifactHoldModel)
