"""Kiln's data plane on AWS (ECS Fargate behind an ALB, infra/cdk/data_plane.py): the local
front (infra/local/front.py) serving only ``app.streaming_routes`` (Glance image data, Cachito
downloads) with streaming bodies, and ``GET /healthz`` for the load balancer. Every other
request reaches an empty Chalice app, which answers as API Gateway does for a path it does not
have (403 "Missing Authentication Token"): the control plane stays on API Gateway.

Settings come from the environment, as for the Lambda functions (chalicelib/config.py).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root

from chalice import Chalice  # noqa: E402
from chalice.config import Config  # noqa: E402

from chalicelib.streaming import StreamingRoute, StreamRequest, StreamResponse  # noqa: E402


def healthz(_request: StreamRequest) -> StreamResponse:
    """Alive and serving (touches no AWS service: a slow table must not fail the task)."""
    return StreamResponse(200, {"Content-Type": "application/json"}, b'{"status": "ok"}')


HEALTH_ROUTE: StreamingRoute = ("GET", r"/healthz", healthz)


def main() -> None:
    logging.basicConfig(level=os.environ.get("KILN_LOG_LEVEL", "INFO"))
    import app as kiln_app
    from infra.local.front import create_front

    port = int(os.environ.get("KILN_DATA_PLANE_PORT", "8080"))
    routes = [*kiln_app.streaming_routes, HEALTH_ROUTE]
    front = create_front(
        Chalice(app_name="kiln-data-plane"), Config.create(), "0.0.0.0", port, routes
    )

    def stop(*_: Any) -> None:  # ECS stops a task with SIGTERM: close, let the task exit
        threading.Thread(target=front.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.getLogger(__name__).info("data plane on port %d: %d routes", port, len(routes))
    front.serve_forever()


if __name__ == "__main__":
    main()
