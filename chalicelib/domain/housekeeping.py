"""What the cleanup schedule does besides ending jobs: purge old deleted records, remove
uploads no record owns, and keep each build node's control object true to its record.
Every step is idempotent, so two runs at once do no harm."""

from __future__ import annotations

import json
import time

from chalicelib.adapters import records
from chalicelib.adapters.artifacts import ArtifactStore, node_control_key
from chalicelib.adapters.glance_models import GlanceImageModel
from chalicelib.adapters.models import (
    BuildNodeModel,
    ComposeModel,
    ImageModel,
    JobModel,
    RecipeModel,
)
from chalicelib.domain.builds import nodes as build_nodes

#: Kiln's own key prefixes: prefix -> who owns "prefix<id>/..."
_OWNED_PREFIXES = ("recipes/", "images/", "jobs/", "control/jobs/", "composes/", "glance/")


def _owner_exists(prefix: str, owner_id: str) -> bool:
    if prefix == "recipes/":
        return records.find(RecipeModel, owner_id) is not None
    if prefix == "images/":
        if records.find(ImageModel, owner_id) is not None:
            return True
        # a running build writes here before its image record exists
        return any(j.planned_image_id == owner_id for j in JobModel.by_unfinished.query("job"))
    if prefix == "composes/":
        return records.find(ComposeModel, owner_id) is not None
    if prefix == "glance/":
        return records.find(GlanceImageModel, owner_id) is not None
    return records.find(JobModel, owner_id) is not None


def remove_orphans(store: ArtifactStore, grace_seconds: float) -> list[str]:
    """Objects under Kiln's prefixes that no record owns and that are older than the grace
    period (an upload in flight has its record already; the grace covers clock skew)."""
    cutoff = time.time() - grace_seconds
    removed = []
    owners: dict[str, bool] = {}
    for prefix in _OWNED_PREFIXES:
        for key, modified in store.objects(prefix):
            rest = key[len(prefix) :]
            if "/" not in rest or modified > cutoff:
                continue
            owner = rest.split("/", 1)[0]
            known = owners.setdefault(prefix + owner, _owner_exists(prefix, owner))
            if not known:
                store.delete(key)
                removed.append(key)
    return removed


def reconcile_node_controls(store: ArtifactStore) -> list[str]:
    """Rewrite a node's control object where it disagrees with the record (a failed write)."""
    fixed = []
    for node in BuildNodeModel.by_kind.query(build_nodes.KIND):
        key = node_control_key(node.xname)
        current = None
        if store.exists(key):
            try:
                current = json.loads(store.read(key)).get("registered")
            except ValueError:
                current = None
        if current != bool(node.registered):
            build_nodes.publish_control(node, store)
            fixed.append(str(node.xname))
    return fixed
