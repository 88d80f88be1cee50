"""boto3 clients from one session per process: service models load once, not per client."""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore.config import Config


@functools.cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()


def client(service: str, region: str, config: Config | None = None) -> Any:
    """A new client; the endpoint (AWS_ENDPOINT_URL) is read from the environment now."""
    return _session().client(service, region_name=region, config=config)
