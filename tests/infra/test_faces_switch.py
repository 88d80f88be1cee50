"""KILN_FACES: a deployment serves the faces it names, and only those (the routes `chalice
package` lists are the ones app.py registers when imported)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import json
from chalice.test import Client
import app
with Client(app.app) as client:
    answers = {path: client.http.get(path).status_code for path in (
        "/v2/images", "/apis/ims/v3/recipes", "/api/v1/requests",
        "/api/image-builder-composer/v2/composes/x", "/omps/api/v2/health/ping")}
print(json.dumps({"answers": answers, "streaming": [r[1] for r in app.streaming_routes]}))
"""


def probe(faces: str) -> dict[str, object]:
    env = {**os.environ, "KILN_FACES": faces}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout.splitlines()[-1]))


def test_only_the_named_faces_have_routes() -> None:
    found = probe("glance, cachito")
    answers = found["answers"]
    assert isinstance(answers, dict)
    assert answers["/v2/images"] == 401  # Glance is there: it wants a token
    assert answers["/api/v1/requests"] == 401  # Cachito too
    for path in ("/apis/ims/v3/recipes", "/api/image-builder-composer/v2/composes/x"):
        assert answers[path] == 403, path  # API Gateway's answer for a route it does not have
    assert answers["/omps/api/v2/health/ping"] == 403
    streaming = found["streaming"]
    assert isinstance(streaming, list) and streaming
    assert all("/v2/images/" in route or "/api/v1/requests/" in route for route in streaming)


def test_every_face_by_default() -> None:
    answers = probe("")["answers"]
    assert isinstance(answers, dict)
    assert answers["/apis/ims/v3/recipes"] == 401
    assert answers["/api/image-builder-composer/v2/composes/x"] == 401
