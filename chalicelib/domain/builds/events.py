"""One message on the build-events queue: host progress and node heartbeats, and the state
machine's final result for each job. The API side is the only writer of records."""

from __future__ import annotations

import time
from typing import Any

from chalicelib import observability
from chalicelib.container import Container
from chalicelib.domain.builds import dispatch
from chalicelib.domain.builds import nodes as build_nodes
from chalicelib.domain.builds import results as build_results
from chalicelib.domain.glance import build_outputs


def _result(message: dict[str, Any], job_id: str, box: Container) -> str:
    """A job ended: record it, then hand its node's room to the oldest waiting job."""
    if message.get("outcome") == "success":
        outcome = build_results.succeeded(job_id, message.get("output") or {}, box.artifacts)
        if outcome == "success":  # the one registry: the image shows in Glance as well
            outcome += "; " + build_outputs.register(job_id, box.glance_imports)
    else:
        error = message.get("error") or {}
        outcome = build_results.failed(
            job_id, str(error.get("Error") or "build failed"), error.get("Cause")
        )
    dispatched = dispatch.dispatch_waiting(box.artifacts, box.workflows, box.settings)
    return f"{outcome}; {', '.join(dispatched) or 'no waiting job dispatched'}"


def handle_one(message: dict[str, Any], box: Container) -> str:
    kind = message.get("type")
    job_id = message.get("job_id")
    observability.correlate(job_id)
    log = observability.logger()
    if kind == "progress" and job_id:
        containers = message.get("ssh_containers")
        upload = message.get("upload_status")
        outcome = build_results.record_progress(
            job_id,
            str(message.get("status")),
            message.get("node"),
            message.get("time"),
            list(containers) if isinstance(containers, list) else None,
            dict(upload) if isinstance(upload, dict) else None,
        )
    elif kind == "result" and job_id:
        outcome = _result(message, job_id, box)
    elif kind == "node_heartbeat":
        node = build_nodes.heartbeat(message, float(message.get("time") or time.time()))
        outcome = "node seen"
        if node.registered and node.accepting:  # it may serve jobs that wait for a node
            dispatched = dispatch.dispatch_waiting(box.artifacts, box.workflows, box.settings)
            outcome = f"node seen; {', '.join(dispatched) or 'no waiting job dispatched'}"
    else:
        outcome = f"ignored: unknown event type {kind!r}"
    level = log.debug if kind == "node_heartbeat" else log.info
    level("build event", extra={"event_type": kind, "outcome": outcome})
    return outcome
