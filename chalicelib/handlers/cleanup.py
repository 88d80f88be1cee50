"""The schedule: end jobs whose host went silent, dispatch or end jobs waiting for a node,
finish interrupted lifecycle operations, purge old deleted records, remove orphan uploads,
put Glance images whose data never arrived back to queued, mark expired Cachito requests stale,
keep the shared dependency cache and the build cache within their age and size, report what
the queues dead-lettered.

Safe to run twice at once: every step is a versioned write or an idempotent S3 call."""

from __future__ import annotations

from collections.abc import Callable

from chalicelib import observability
from chalicelib.container import Container
from chalicelib.domain import housekeeping
from chalicelib.domain.builds import build_cache_eviction, capacity, dispatch
from chalicelib.domain.builds import results as build_results
from chalicelib.domain.cachito import cache_eviction
from chalicelib.domain.cachito import staleness as cachito_staleness
from chalicelib.domain.glance import stuck
from chalicelib.domain.ims import lifecycle


def run(box: Container) -> dict[str, list[str]]:
    settings, store = box.settings, box.artifacts
    limit = settings.job_stale_seconds
    steps: dict[str, Callable[[], list[str]]] = {
        "ended_jobs": lambda: build_results.end_stale(limit, box),
        "freed_slots": capacity.release_abandoned,
        "waiting_jobs": lambda: dispatch.dispatch_waiting(box),
        "jobs_awaiting_node": dispatch.report_waiting,
        "finished_interrupted": lambda: [
            line
            for kind in lifecycle.KINDS
            for line in lifecycle.finish_interrupted(
                kind, store, settings.interrupted_grace_seconds
            )
        ],
        "purged_deleted": lambda: [
            line
            for kind in lifecycle.KINDS
            for line in lifecycle.purge_expired(kind, store, settings.deleted_retention_seconds)
        ],
        "removed_orphans": lambda: housekeeping.remove_orphans(
            store, settings.orphan_grace_seconds
        ),
        "node_controls_fixed": lambda: housekeeping.reconcile_node_controls(store),
        "glance_stuck_images": lambda: stuck.recover(store, settings),
        "cachito_stale_requests": lambda: cachito_staleness.expire(settings, store),
        "cachito_cache_evicted": lambda: cache_eviction.evict(settings, store),
        "build_cache_evicted": lambda: build_cache_eviction.evict(settings, store),
        "dead_letters": lambda: dead_letters(box),
    }
    report: dict[str, list[str]] = {}
    log = observability.logger()
    for name, step in steps.items():
        try:
            report[name] = step()
        except Exception as exc:  # one failing step must not stop the others
            log.exception("cleanup step failed", extra={"step": name})
            report[name] = [f"failed: {exc}"]
    log.info("cleanup ran", extra=report)
    return report


def dead_letters(box: Container) -> list[str]:
    """One line per dead-letter queue that holds messages (their count and a few of them, left
    in place); an error log and the DeadLetters metric when there are any."""
    lines: list[str] = []
    total = 0
    for name in box.dead_letters.names:
        try:
            queue = box.dead_letters.look(name)
        except Exception as exc:  # one unreadable queue must not hide the others
            observability.logger().exception("dead-letter queue unreadable", extra={"queue": name})
            lines.append(f"{name}: failed: {exc}")
            continue
        if queue.count:
            total += queue.count
            peeked = ", ".join(f"{letter.subject} ({letter.kind})" for letter in queue.peeked)
            lines.append(f"{name}: {queue.count} message(s)" + (f"; {peeked}" if peeked else ""))
    if total:
        observability.logger().error(
            "messages in dead-letter queues", extra={"dead_letters": total, "queues": lines}
        )
        observability.count("DeadLetters", total)
    return lines
