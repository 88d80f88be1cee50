"""The schedule: end jobs whose build host went silent past the job timeout."""

from __future__ import annotations

import os

from chalicelib import observability
from chalicelib.domain import builds


def run() -> list[str]:
    limit = float(os.environ.get("KILN_JOB_STALE_SECONDS", str(4 * 3600)))
    ended = []
    for job in builds.stale_jobs(limit):
        outcome = builds.expire(job.id, f"no result after {int(limit)} s; the build was abandoned")
        ended.append(f"{job.id}: {outcome}")
    observability.logger().info("cleanup ran", extra={"ended_jobs": ended})
    return ended
