"""Cachito's service endpoints: ``GET /api/v1/status`` and ``/status/short`` (the build hosts
that run Cachito requests and the services Kiln needs for them), ``GET /healthcheck`` for load
balancers, and this face's own OpenAPI document (``GET /api/v1/openapi``). None needs a token.

Workers are the registered build hosts that run job type ``cachito``; one is ``ok`` while it
heartbeats and accepts work. Services are DynamoDB and S3. ``/status/short`` answers 503 with
a reason when no worker is ok or a service is down (upstream answers a bare 500 for the
latter)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import yaml
from chalice import Blueprint, Response

from chalicelib import observability
from chalicelib.adapters.cachito_models import CounterModel
from chalicelib.config import Settings
from chalicelib.container import container
from chalicelib.domain.builds import nodes as build_nodes
from chalicelib.domain.cachito.job_kinds import JOB_TYPE
from chalicelib.faces.cachito.requests import no_query
from chalicelib.faces.cachito.routing import CachitoCall, cachito_route

bp = Blueprint(__name__)
DOCUMENT = Path(__file__).with_name("kiln-cachito-v1.yaml")
NO_WORKERS = "no workers are available"


def _dynamodb() -> tuple[bool, str | None]:
    try:
        CounterModel.get("cachito-request")
    except CounterModel.DoesNotExist:
        pass
    except Exception as exc:  # any failure to read is the service being unavailable
        return False, f"{type(exc).__name__}: {exc}"[:300]
    return True, None


def _s3() -> tuple[bool, str | None]:
    try:
        next(container().artifacts.objects("cachito/status/"), None)
    except Exception as exc:  # any failure to list is the service being unavailable
        return False, f"{type(exc).__name__}: {exc}"[:300]
    return True, None


def services() -> list[dict[str, Any]]:
    found = []
    for name, probe in (("dynamodb", _dynamodb), ("s3", _s3)):
        ok, reason = probe()
        found.append({"name": name, "ok": ok, **({"reason": reason} if reason else {})})
    return found


def workers(settings: Settings) -> list[dict[str, Any]]:
    """Every registered build host that runs Cachito requests, by name (none while the
    records cannot be read: DynamoDB's entry in ``services`` says why)."""
    try:
        return _workers(settings)
    except Exception:  # the nodes' table is unreadable: no worker can be counted on
        observability.logger().exception("reading the build nodes failed")
        return []


def _workers(settings: Settings) -> list[dict[str, Any]]:
    fresh = settings.node_fresh_seconds
    serving = {
        node.xname for node in build_nodes.serving(settings.cachito_arch, JOB_TYPE, "", fresh)
    }
    found = []
    for node in sorted(build_nodes.registered(), key=lambda n: n.xname):
        if JOB_TYPE not in (node.job_types or []):
            continue
        entry: dict[str, Any] = {"name": node.xname, "ok": node.xname in serving}
        if not entry["ok"]:
            entry["reason"] = _why_not(node, settings)
        found.append(entry)
    return found


def _why_not(node: Any, settings: Settings) -> str:
    if not build_nodes.healthy(node, settings.node_fresh_seconds):
        return f"no heartbeat in the last {settings.node_fresh_seconds} s"
    if node.arch != settings.cachito_arch:
        return f"arch {node.arch}; Cachito requests run on {settings.cachito_arch}"
    return "not accepting jobs"


def status() -> dict[str, Any]:
    settings = container().settings
    found_services = services()
    found_workers = workers(settings)
    usable = all(s["ok"] for s in found_services) and any(w["ok"] for w in found_workers)
    managers = [m.strip() for m in settings.cachito_package_managers.split(",") if m.strip()]
    return {
        "can_process": {manager: usable for manager in managers},
        "services": found_services,
        "workers": found_workers,
    }


@cachito_route(bp, "/status", ["GET"], public=True)
def get_status(principal: None, call: CachitoCall) -> dict[str, Any]:
    no_query(call)
    return status()


@cachito_route(bp, "/status/short", ["GET"], public=True)
def get_status_short(principal: None, call: CachitoCall) -> Response:
    no_query(call)
    found = status()
    down = [s for s in found["services"] if not s["ok"]]
    body: dict[str, Any] = {"ok": True}
    if down:
        body = {"ok": False, "reason": f"{down[0]['name']} unavailable: {down[0]['reason']}"}
    elif not any(w["ok"] for w in found["workers"]):
        body = {"ok": False, "reason": NO_WORKERS}
    return Response(
        body=json.dumps(body, sort_keys=True),
        status_code=200 if body["ok"] else 503,
        headers={"Content-Type": "application/json"},
    )


@cachito_route(bp, "/healthcheck", ["GET"], public=True, root=True)
def healthcheck(principal: None, call: CachitoCall) -> Response:
    return Response(body="OK", status_code=200, headers={"Content-Type": "text/plain"})


@cachito_route(bp, "/openapi", ["GET"], public=True)
def get_openapi(principal: None, call: CachitoCall) -> dict[str, Any]:
    no_query(call)
    return document()


@functools.lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    loaded = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    return dict(json.loads(json.dumps(loaded, default=str)))
