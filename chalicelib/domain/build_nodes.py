"""Build hosts ('remote build nodes' in IMS): who is alive, for which arch and recipe types."""

from __future__ import annotations

import time

from chalicelib.adapters import records
from chalicelib.adapters.models import BuildNodeModel

KIND = "build-node"


def heartbeat(
    xname: str, arch: str, recipe_types: list[str], current_job: str | None, now: float
) -> BuildNodeModel:
    """A host said it is alive. Creates the node on first contact."""
    node = records.find(BuildNodeModel, xname)
    if node is None:
        node = BuildNodeModel(xname=xname, kind=KIND, created_id=f"{records.utc_now()}#{xname}")
    node.arch = arch
    node.recipe_types = sorted(recipe_types)
    node.current_job = current_job
    node.last_heartbeat = now
    node.save()
    return node


def all_nodes() -> list[BuildNodeModel]:
    return list(BuildNodeModel.by_kind.query(KIND))


def serving(arch: str, recipe_type: str, fresh_seconds: int, now: float | None = None) -> list[str]:
    """xnames of healthy nodes that build ``recipe_type`` for ``arch``."""
    cutoff = (now or time.time()) - fresh_seconds
    return [
        node.xname
        for node in all_nodes()
        if node.arch == arch and recipe_type in node.recipe_types and node.last_heartbeat >= cutoff
    ]


def capabilities(fresh_seconds: int, now: float | None = None) -> list[str]:
    """'arch/recipe_type' pairs some healthy node serves, for error messages."""
    cutoff = (now or time.time()) - fresh_seconds
    pairs = {
        f"{node.arch}/{recipe_type}"
        for node in all_nodes()
        if node.last_heartbeat >= cutoff
        for recipe_type in node.recipe_types
    }
    return sorted(pairs)
