"""One message on the build-events queue (host_protocol.decode_event): host progress and node
heartbeats, and the state machine's final result for each job. The API side is the only
writer of records. A message that is not one of the protocol's raises ProtocolError: the
handler reports it failed, so it is retried and then dead-lettered, never dropped."""

from __future__ import annotations

from typing import Any

from chalicelib import observability
from chalicelib.domain.builds import dispatch
from chalicelib.domain.builds import nodes as build_nodes
from chalicelib.domain.builds import results as build_results
from chalicelib.domain.builds.kinds import Ports
from chalicelib.host_protocol import JobResult, NodeHeartbeat, Progress, decode_event


def _result(result: JobResult, ports: Ports) -> str:
    """A job ended: record it (its slot is freed), then dispatch the oldest waiting jobs."""
    if result.output is not None:
        outcome = build_results.succeeded(result.job_id, result.output, ports)
    else:
        assert result.failure is not None
        outcome = build_results.failed(result.job_id, result.failure, ports)
    dispatched = dispatch.dispatch_waiting(ports)
    return f"{outcome}; {', '.join(dispatched) or 'no waiting job dispatched'}"


def handle_one(message: Any, ports: Ports) -> str:
    """Handle one decoded-JSON message; returns what happened, for the log."""
    event = decode_event(message)
    log = observability.logger()
    if isinstance(event, Progress):
        observability.correlate(event.job_id)
        outcome = build_results.record_progress(event, ports)
    elif isinstance(event, JobResult):
        observability.correlate(event.job_id)
        outcome = _result(event, ports)
    else:
        assert isinstance(event, NodeHeartbeat)
        observability.correlate(None)
        enrol = ports.artifacts if ports.settings.node_auto_register else None
        node = build_nodes.heartbeat(event, enrol)
        outcome = "node seen"
        if node.registered and node.accepting:  # it may have room for jobs that wait
            dispatched = dispatch.dispatch_waiting(ports)
            outcome = f"node seen; {', '.join(dispatched) or 'no waiting job dispatched'}"
    level = log.debug if isinstance(event, NodeHeartbeat) else log.info
    level("build event", extra={"event_type": event.type, "outcome": outcome})
    return outcome
