"""Where a job's time went and what it cost (docs/build-cost.md).

A job's ``timing`` is recorded once it ends: seconds per stage (``queue_wait`` is the
service's, from the job's creation to the host taking it; the others the host counted:
``host_protocol.Stage``), the host's instance-seconds, and an estimated cost at the price of
an instance-hour of the job's arch from the configuration. Every face shows it as its
documented ``timing`` extension; Powertools Metrics emit ``StageSeconds`` (per stage and
arch) and ``BuildCost``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib import observability
from chalicelib.adapters import records
from chalicelib.adapters.models import JobModel
from chalicelib.config import Settings
from chalicelib.host_protocol import BuildOutput, Stage

CURRENCY = "USD"


def price_per_hour(arch: str, settings: Settings) -> float:
    return float(getattr(settings, f"price_per_hour_{arch}", settings.price_per_hour_x86_64))


def of_success(job: JobModel, output: BuildOutput, settings: Settings) -> dict[str, Any]:
    """The timing of a job its host answered: the host's stages, the wait before them."""
    created = records.epoch(job.created)
    started = output.started_at or job.host_started or created
    stages = {Stage.QUEUE_WAIT.value: round(max(0.0, started - created), 3)}
    stages.update({name: round(float(value), 3) for name, value in output.timings.items()})
    instance_seconds = round(float(output.build_seconds or sum(output.timings.values())), 3)
    cache = output.cache or {}
    return _timing(
        job,
        stages,
        instance_seconds,
        settings,
        cache="hit" if cache.get("hit") else ("miss" if cache else None),
    )


def of_failure(job: JobModel, now: float, settings: Settings) -> dict[str, Any]:
    """A failed job's timing: the host's answer carries no stages, so what the service saw:
    the wait, and the time the host held it (its instance-seconds)."""
    created = records.epoch(job.created)
    started = job.host_started
    stages = {Stage.QUEUE_WAIT.value: round(max(0.0, (started or now) - created), 3)}
    held = round(max(0.0, now - started), 3) if started else 0.0
    return _timing(job, stages, held, settings, cache=None)


def _timing(
    job: JobModel,
    stages: dict[str, float],
    instance_seconds: float,
    settings: Settings,
    cache: str | None,
) -> dict[str, Any]:
    price = price_per_hour(job.arch, settings)
    timing: dict[str, Any] = {
        "stages": stages,
        "total_seconds": round(sum(stages.values()), 3),
        "instance_seconds": instance_seconds,
        "cost": {
            "currency": CURRENCY,
            "estimate": round(instance_seconds * price / 3600, 6),
            "price_per_hour": price,
            "arch": job.arch,
        },
    }
    if cache:
        timing["cache"] = cache
    return timing


def emit(timing: dict[str, Any], arch: str) -> None:
    """Powertools Metrics: seconds per stage, and the cost, per arch."""
    for stage, value in timing["stages"].items():
        observability.gauge("StageSeconds", value, MetricUnit.Seconds, stage=stage, arch=arch)
    observability.gauge("BuildCost", timing["cost"]["estimate"], MetricUnit.NoUnit, arch=arch)
