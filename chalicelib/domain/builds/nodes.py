"""Build hosts ('remote build nodes' in IMS).

An admin registers a node by xname; only registered nodes take work. The host itself learns
whether it is registered from a small control object in S3 (it never reads DynamoDB), and
reports arch, recipe types, job types and its current job in heartbeats. Deregistering drains
the node: it finishes its job and takes no new one.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from chalicelib.adapters import records
from chalicelib.adapters.artifacts import ArtifactStore, node_control_key
from chalicelib.adapters.models import BuildNodeModel
from chalicelib.auth import Principal
from chalicelib.domain.validation import BodyCheck, require_object
from chalicelib.errors import Conflict, NotFound
from chalicelib.host_protocol import NodeHeartbeat

KIND = "build-node"
XNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def _new(xname: str) -> BuildNodeModel:
    return BuildNodeModel(xname=xname, kind=KIND, created_id=f"{records.utc_now()}#{xname}")


def register(principal: Principal, body: Any, store: ArtifactStore) -> BuildNodeModel:
    principal.require_role("admin")
    check = BodyCheck(require_object(body), known=("xname",))
    xname = check.string("xname", required=True, min_len=1) or ""
    if xname and not XNAME.match(xname):
        check.fail("xname", "Letters, digits and . _ : - only (at most 128).")
    check.done()
    existing = records.find(BuildNodeModel, xname)
    if existing is not None and existing.registered:
        raise Conflict(f"remote build node {xname} is already registered")

    def mark(node: BuildNodeModel) -> None:
        node.registered, node.registered_at = True, records.utc_now()

    node = _change(xname, mark)
    publish_control(node, store)
    return node


def deregister(principal: Principal, xname: str, store: ArtifactStore) -> None:
    """The node drains: it finishes the job it has and takes no new one."""
    get(principal, xname)
    _deregister(xname, store)


def deregister_all(principal: Principal, store: ArtifactStore) -> list[str]:
    principal.require_role("admin")
    return [_deregister(node.xname, store) for node in registered()]


def _deregister(xname: str, store: ArtifactStore) -> str:
    def unmark(node: BuildNodeModel) -> None:
        node.registered, node.registered_at = False, None

    publish_control(_change(xname, unmark), store)
    return xname


def _change(xname: str, change: Callable[[BuildNodeModel], None]) -> BuildNodeModel:
    """Read, change, save with the version check; again if a heartbeat won the race."""
    return records.change_versioned(
        lambda: records.find(BuildNodeModel, xname) or _new(xname),
        change,
        f"remote build node {xname}",
    )


def publish_control(node: BuildNodeModel, store: ArtifactStore) -> None:
    """What the host reads to decide whether it may take work."""
    store.put_json(node_control_key(node.xname), {"registered": bool(node.registered)})


def get(principal: Principal, xname: str) -> BuildNodeModel:
    principal.require_role("admin")
    node = records.find(BuildNodeModel, xname)
    if node is None or not node.registered:
        raise NotFound(f"remote build node {xname} not found")
    return node


def registered() -> list[BuildNodeModel]:
    return [node for node in all_nodes() if node.registered]


def list_for(principal: Principal) -> list[BuildNodeModel]:
    principal.require_role("admin")
    return registered()


def heartbeat(beat: NodeHeartbeat, enrol: ArtifactStore | None = None) -> BuildNodeModel:
    """A host said it is alive. Creates an unregistered node on first contact; never touches
    the registration (an admin's write) -- unless the deployment enrols its own hosts
    (``enrol``: ``KILN_NODE_AUTO_REGISTER``, an AWS fleet's instances, which only its host role
    can speak for on the build-events queue): then a node first heard of is registered. A node
    an admin deregistered has a record, so it stays deregistered."""
    enrolled: list[bool] = []

    def seen(node: BuildNodeModel) -> None:
        enrolled[:] = [enrol is not None and node.version is None]
        if enrolled[0]:
            node.registered, node.registered_at = True, records.utc_now()
        node.arch = beat.arch
        node.recipe_types = sorted(str(t) for t in beat.recipe_types)
        node.job_types = sorted(str(t) for t in beat.job_types)
        node.accepting = bool(beat.accepting)
        node.current_job = beat.current_job
        node.slots = max(1, int(beat.slots))
        node.last_heartbeat = float(beat.time or time.time())

    node = _change(beat.xname, seen)
    if enrolled[0] and enrol is not None:
        publish_control(node, enrol)
    return node


def all_nodes() -> list[BuildNodeModel]:
    return list(BuildNodeModel.by_kind.query(KIND))


def healthy(node: BuildNodeModel, fresh_seconds: int, now: float | None = None) -> bool:
    return node.last_heartbeat >= (now or time.time()) - fresh_seconds


def status(node: BuildNodeModel, fresh_seconds: int) -> str:
    if not node.last_heartbeat:
        return "never_seen"
    if not healthy(node, fresh_seconds):
        return "silent"
    return "busy" if node.current_job else ("ready" if node.accepting else "not_accepting")


def seconds_since_heartbeat(node: BuildNodeModel, now: float | None = None) -> int | None:
    """Whole seconds since the node's last heartbeat; None if it was never heard from."""
    if not node.last_heartbeat:
        return None
    return max(0, int((now or time.time()) - node.last_heartbeat))


def running_jobs(node: BuildNodeModel, fresh_seconds: int, now: float | None = None) -> int | None:
    """Jobs the node runs now, as its fresh heartbeat says (a host runs one job at a time and
    reports it as ``current_job``); None when unknown: never heard from, or silent."""
    if not node.last_heartbeat or not healthy(node, fresh_seconds, now):
        return None
    return 1 if node.current_job else 0


def able_to_run_jobs(node: BuildNodeModel, fresh_seconds: int, now: float | None = None) -> bool:
    """Whether the node may be given a job now: registered, heard from lately, accepting."""
    return bool(node.registered and node.accepting and healthy(node, fresh_seconds, now))


def serves(node: BuildNodeModel, arch: str, job_type: str, recipe_type: str) -> bool:
    if node.arch != arch:
        return False
    if job_type != "create":  # customize, cachito: the host lists the job types it runs
        return job_type in node.job_types
    return recipe_type in node.recipe_types


def serving(
    arch: str,
    job_type: str,
    recipe_type: str,
    fresh_seconds: int,
    now: float | None = None,
    nodes: list[BuildNodeModel] | None = None,
) -> list[BuildNodeModel]:
    """Registered, healthy, accepting nodes that can run this job (of ``nodes``, default all
    registered ones)."""
    return [
        node
        for node in (registered() if nodes is None else nodes)
        if node.accepting
        and healthy(node, fresh_seconds, now)
        and serves(node, arch, job_type, recipe_type)
    ]


def advertised(recipe_type: str) -> bool:
    """Whether any registered node (healthy or not) has ever said it builds ``recipe_type``."""
    return any(recipe_type in node.recipe_types for node in registered())


def capabilities(fresh_seconds: int, now: float | None = None) -> list[str]:
    """'arch/recipe_type' pairs registered healthy nodes serve, for error messages."""
    pairs = {
        f"{node.arch}/{kind}"
        for node in registered()
        if node.accepting and healthy(node, fresh_seconds, now)
        for kind in [*node.recipe_types, *(t for t in node.job_types if t != "create")]
    }
    return sorted(pairs)
