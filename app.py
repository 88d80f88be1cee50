"""Kiln: wiring only. Each API face is a blueprint; non-HTTP handlers delegate to chalicelib."""

from __future__ import annotations

from typing import Any

from chalice import Chalice, Rate

from chalicelib import observability
from chalicelib.config import BUILD_EVENTS_QUEUE, UPLOAD_EVENTS_QUEUE
from chalicelib.container import container
from chalicelib.faces.composer import composes as composer_composes
from chalicelib.faces.composer import service as composer_service
from chalicelib.faces.ims import build_nodes, images, jobs, public_keys, recipes, service
from chalicelib.handlers import build_events, cleanup, upload_events

app = Chalice(app_name="kiln", configure_logs=False)  # Powertools logs as "kiln"
app.register_middleware(observability.middleware, "all")
for face in (recipes, public_keys, images, jobs, build_nodes, service):
    app.register_blueprint(face.bp)
for face in (composer_composes, composer_service):
    app.register_blueprint(face.bp)


@app.on_sqs_message(queue=UPLOAD_EVENTS_QUEUE, batch_size=10)
def on_upload_event(event: Any) -> None:
    upload_events.handle((record.body for record in event), container())


@app.on_sqs_message(queue=BUILD_EVENTS_QUEUE, batch_size=10)
def on_build_event(event: Any) -> None:
    build_events.handle((record.body for record in event), container())


@app.schedule(Rate(5, unit=Rate.MINUTES))
def on_cleanup_schedule(event: Any) -> dict[str, list[str]]:
    return cleanup.run(container())
