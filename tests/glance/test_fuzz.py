"""The Glance face fuzzed: never a 5xx, and only what Kiln's document of it says.

schemathesis fuzzes every operation of Kiln's OpenAPI document for the face
(chalicelib/faces/glance/kiln-glance-v2.yaml) over HTTP: through the local front `make up`
serves (its streaming routes for PUT/GET /file and PUT /stage) and, for those three, through
chalice's local server too (the Chalice routes API Gateway invokes); then in sequences along
the document's links. Both servers run the app against moto in-process, which refuses what
DynamoDB refuses (tests/conftest.py). The hostile cases no generator is likely to find are in
test_hostile.py.
"""

from __future__ import annotations

from typing import Any

import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import ROOT
from tests.glance.http_support import PATCH_20, PATCH_21, SEEDS, GlanceHttp

DOCUMENT = ROOT / "chalicelib" / "faces" / "glance" / "kiln-glance-v2.yaml"
METHODS = ("get", "put", "post", "delete", "patch")
#: no 5xx, and only the statuses, media types and bodies the document gives
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: hermetic (no schemathesis.toml is looked for). chalice's local server answers TRACE and the
#: like itself with 501 (API Gateway answers them when deployed); Kiln's front hands them to the
#: app (tests/test_hostile_input.py checks its 405s).
CONFIG = schemathesis.Config.from_dict(
    {
        "phases": {
            "coverage": {"unexpected-methods": ["get", "put", "post", "delete", "options", "patch"]}
        }
    }
)
FUZZ = settings(
    max_examples=30,
    deadline=None,
    database=None,  # every run starts afresh: no replay of examples saved by earlier runs
    suppress_health_check=list(HealthCheck),
)

glance_schema = schemathesis.openapi.from_path(DOCUMENT, config=CONFIG)
#: Glance's patch media types are JSON
schemathesis.serializer.alias([PATCH_21, PATCH_20], "application/json")


@glance_schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
    """Half of the time, a seeded image (and member beta) instead of what was generated."""
    if not path_parameters or "image_id" not in path_parameters:
        return st.just(path_parameters)
    seeded = {"image_id": st.sampled_from(SEEDS)}
    if "member_id" in path_parameters:
        seeded["member_id"] = st.sampled_from(("beta", "alpha"))
    real = st.fixed_dictionaries(seeded).map(lambda chosen: {**path_parameters, **chosen})
    return st.one_of(st.just(path_parameters), real)


#: the three data routes exist twice: streaming (the local front) and as Chalice routes
data_schema = glance_schema.include(path_regex=r"/(file|stage)$")
#: for the stateful run: only the document's own links (schemathesis would infer more from
#: GET /v2/images, whose answers grow with every image made) and no seeded images, so that a
#: sequence hypothesis replays meets the same answers (it refuses, as flaky, one that does not)
stateful_schema = schemathesis.openapi.from_path(
    DOCUMENT,
    config=schemathesis.Config.from_dict(
        {"phases": {"stateful": {"inference": {"algorithms": []}}}}
    ),
)


def load() -> dict[str, Any]:
    return dict(yaml.safe_load(DOCUMENT.read_text(encoding="utf-8")))


# -- the document -----------------------------------------------------------------------------


def test_the_document_is_valid_openapi() -> None:
    validate(load())


def test_the_document_has_every_route_the_face_serves() -> None:
    import app as app_module

    served = {
        (method.lower(), path)
        for path, entries in app_module.app.routes.items()
        if not path.startswith(
            ("/apis/ims", "/api/image-builder-composer", "/api/v1/", "/omps/", "/cnr/", "/kiln/")
        )
        and not path.startswith("/console")  # Kiln's web console
        and path != "/healthcheck"  # Cachito's, outside /api/v1 as upstream has it
        for method in entries
    }
    documented = {
        (method, path)
        for path, item in load()["paths"].items()
        for method in item
        if method in METHODS
    }
    assert documented == served
    streaming = {
        (method.lower(), pattern.replace("(?P<image_id>[^/]+)", "{image_id}"))
        for method, pattern, _handler in app_module.streaming_routes
        if pattern.startswith("/v2/")
    }
    assert streaming <= documented


# -- fuzzing ----------------------------------------------------------------------------------


def _after(served: GlanceHttp, case: schemathesis.Case, response: Any) -> None:
    if case.method == "DELETE" and response.status_code == 204:
        served.seed()


@glance_schema.parametrize()
@FUZZ
def test_no_operation_answers_5xx_through_the_local_front(
    case: schemathesis.Case, served: GlanceHttp
) -> None:
    response = case.call_and_validate(
        base_url=served.front, headers=served.headers(), checks=CHECKS, allow_redirects=False
    )
    _after(served, case, response)


@data_schema.parametrize()
@FUZZ
def test_no_data_operation_answers_5xx_as_a_chalice_route(
    case: schemathesis.Case, served: GlanceHttp
) -> None:
    response = case.call_and_validate(
        base_url=served.chalice, headers=served.headers(), checks=CHECKS, allow_redirects=False
    )
    _after(served, case, response)


def test_images_followed_through_the_document_s_links(served: GlanceHttp) -> None:
    """schemathesis's stateful run: POST /v2/images, then what its 201 links to (data, tags,
    members, import, direct upload, …) in sequences, each answer checked."""

    class Workflow(stateful_schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: schemathesis.Case) -> None:
            # a client-chosen id is taken when hypothesis replays the sequence: a 409 where there
            # was a 201, and the sequence no longer the same
            if case.operation.label == "POST /v2/images" and isinstance(case.body, dict):
                case.body.pop("id", None)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": served.front, "headers": served.headers(), "allow_redirects": False}

        def validate_response(
            self, response: Any, case: schemathesis.Case, additional_checks: Any = None, **kw: Any
        ) -> None:
            case.validate_response(response, checks=CHECKS, transport_kwargs=kw)

    Workflow.run(settings=settings(FUZZ, max_examples=40, stateful_step_count=8))
