"""The schedule: end jobs whose build host went silent past the job timeout."""

from __future__ import annotations

from chalicelib import observability
from chalicelib.config import Settings
from chalicelib.domain import builds


def run(settings: Settings) -> list[str]:
    """Safe to run twice at once: ending a job is a versioned write that happens once."""
    limit = settings.job_stale_seconds
    ended = []
    for job in builds.stale_jobs(limit):
        outcome = builds.expire(job.id, f"no result after {limit} s; the build was abandoned")
        ended.append(f"{job.id}: {outcome}")
    observability.logger().info("cleanup ran", extra={"ended_jobs": ended})
    return ended
