"""Kiln: wiring only. Each API face is a blueprint; non-HTTP handlers delegate to chalicelib."""

from __future__ import annotations

from typing import Any

from chalice import Chalice, Rate

from chalicelib import observability
from chalicelib.config import (
    BUILD_EVENTS_QUEUE,
    GLANCE_IMPORTS_QUEUE,
    UPLOAD_EVENTS_QUEUE,
    enabled_faces,
)
from chalicelib.container import container
from chalicelib.faces import cachito as cachito_face
from chalicelib.faces import cnr as cnr_face
from chalicelib.faces import framework_errors
from chalicelib.faces import kiln as kiln_face
from chalicelib.faces import omps as omps_face
from chalicelib.faces.composer import composes as composer_composes
from chalicelib.faces.composer import service as composer_service
from chalicelib.faces.glance import data as glance_data
from chalicelib.faces.glance import discovery as glance_discovery
from chalicelib.faces.glance import images as glance_images
from chalicelib.faces.glance import members as glance_members
from chalicelib.faces.glance import sbom as glance_sbom
from chalicelib.faces.ims import build_nodes, images, jobs, public_keys, recipes, service
from chalicelib.handlers import batches, build_events, cleanup, glance_imports, upload_events
from chalicelib.handlers.batches import BatchResponse

app = Chalice(app_name="kiln", configure_logs=False)  # Powertools logs as "kiln"
app.register_middleware(observability.middleware, "all")
app.register_middleware(framework_errors.middleware, "http")  # each face's own error format
kiln_face.register(app)  # Kiln's own routes (/kiln/v1: builds, provenance keys; /console)
faces = enabled_faces()  # KILN_FACES: a deployment may serve some faces only
if "ims" in faces:
    for face in (recipes, public_keys, images, jobs, build_nodes, service):
        app.register_blueprint(face.bp)
if "composer" in faces:
    for face in (composer_composes, composer_service):
        app.register_blueprint(face.bp)
if "glance" in faces:
    for face in (glance_discovery, glance_images, glance_members, glance_data, glance_sbom):
        app.register_blueprint(face.bp)
if "cachito" in faces:
    cachito_face.register(app)
if "omps" in faces:  # OMPS publishes into Kiln's app registry, which serves Quay's API
    omps_face.register(app)
    cnr_face.register(app)
#: Glance's data routes and Cachito's download as the local front streams them (same domain calls
#: as the routes above)
streaming_routes = (glance_data.STREAMING_ROUTES if "glance" in faces else ()) + (
    cachito_face.STREAMING_ROUTES if "cachito" in faces else ()
)


@app.on_sqs_message(queue=UPLOAD_EVENTS_QUEUE, batch_size=10)
def on_upload_event(event: Any) -> BatchResponse:
    return upload_events.handle(batches.messages(event), container())


@app.on_sqs_message(queue=BUILD_EVENTS_QUEUE, batch_size=10)
def on_build_event(event: Any) -> BatchResponse:
    return build_events.handle(batches.messages(event), container())


@app.schedule(Rate(5, unit=Rate.MINUTES))
def on_cleanup_schedule(event: Any) -> dict[str, list[str]]:
    return cleanup.run(container())


@app.on_sqs_message(queue=GLANCE_IMPORTS_QUEUE, batch_size=1)
def on_glance_import(event: Any) -> BatchResponse:
    return glance_imports.handle(batches.messages(event), container())
