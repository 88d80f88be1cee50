"""Powertools Logger, Metrics and Tracer, made once per process and wired as Chalice middleware."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

SERVICE = "kiln"


@functools.cache
def logger() -> Logger:
    return Logger(service=SERVICE)


@functools.cache
def metrics() -> Metrics:
    return Metrics(namespace="Kiln", service=SERVICE)


@functools.cache
def tracer() -> Tracer:
    return Tracer(service=SERVICE)


def count(name: str, value: float = 1) -> None:
    metrics().add_metric(name=name, unit=MetricUnit.Count, value=value)


def seconds(name: str, value: float) -> None:
    metrics().add_metric(name=name, unit=MetricUnit.Seconds, value=value)


def gauge(name: str, value: float, unit: MetricUnit = MetricUnit.Count, **dimensions: str) -> None:
    """One metric with its own dimensions (an EMF line of its own; the shared Metrics object
    keeps one dimension set per flush)."""
    with single_metric(name=name, unit=unit, value=value, namespace="Kiln") as metric:
        for key, dimension in dimensions.items():
            metric.add_dimension(name=key, value=dimension)


def correlate(job_id: str | None) -> None:
    """Every log line from here on in this invocation carries the job id."""
    if job_id:
        logger().set_correlation_id(job_id)


def middleware(event: Any, get_response: Callable[[Any], Any]) -> Any:
    """Chalice middleware for every event type: a traced segment, flushed metrics, clean keys."""
    log = logger()
    log.clear_state()
    log.append_keys(event_type=type(event).__name__)

    def respond(event: Any) -> Any:  # a plain function: the tracer names its segment after it
        return get_response(event)

    handle = tracer().capture_method(respond)
    try:
        return handle(event)
    finally:
        if metrics().metric_set:
            metrics().flush_metrics()
