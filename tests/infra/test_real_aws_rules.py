"""Rules a real AWS deployment enforces that moto (and so every other test) lets pass: each
test here would have caught a bug that only showed on AWS."""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice.app import Response

from chalicelib.config import INLINE_BODY_MAX, Settings
from infra import resources
from tests.glance.http_support import GlanceHttp, glance_http

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
FAKE_URLS = {
    spec.name: f"https://sqs.{REGION}.amazonaws.com/123456789012/{spec.name}"
    for spec in resources.queues()
}

# -- DynamoDB: KeySchema lists HASH first, then RANGE -----------------------------------------


def _key_schemas() -> Iterator[tuple[str, list[dict[str, str]]]]:
    for table in resources.tables("kiln", REGION):
        yield table["TableName"], table["KeySchema"]
        for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            for index in table.get(kind, []):
                yield f"{table['TableName']}/{index['IndexName']}", index["KeySchema"]


@pytest.mark.parametrize("name,schema", list(_key_schemas()), ids=lambda v: str(v)[:60])
def test_key_schema_lists_hash_first_then_range(name: str, schema: list[dict[str, str]]) -> None:
    """DynamoDB refuses CreateTable ("Invalid KeySchema: The first KeySchemaElement is not a
    HASH key type") when a KeySchema lists RANGE first; moto does not care."""
    types = [element["KeyType"] for element in schema]
    assert types in (["HASH"], ["HASH", "RANGE"]), f"{name}: KeySchema is {schema}"


# -- Step Functions: numeric fields are JSON numbers ------------------------------------------

#: field -> the JSON type Step Functions wants (ASL: positive integers, BackoffRate a number)
NUMERIC_FIELDS = {
    "HeartbeatSeconds": int,
    "TimeoutSeconds": int,
    "IntervalSeconds": int,
    "MaxAttempts": int,
    "BackoffRate": (int, float),
}


def _numeric_fields(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in NUMERIC_FIELDS:
                yield f"{path}/{key}", value
            yield from _numeric_fields(value, f"{path}/{key}")
    elif isinstance(node, list):
        for number, value in enumerate(node):
            yield from _numeric_fields(value, f"{path}/{number}")


def test_asl_numeric_fields_are_json_numbers_after_substitution() -> None:
    """CreateStateMachine refuses ``"HeartbeatSeconds": "60"`` (a string); moto takes it and
    never times out. Kiln's ASL keeps "${HeartbeatSeconds}" placeholders: render_state_machine
    must put numbers there."""
    rendered = json.loads(
        resources.render_state_machine(
            resources.state_machine_substitutions(FAKE_URLS, resources.Timing())
        )
    )
    found = list(_numeric_fields(rendered))
    assert {path.rsplit("/", 1)[1] for path, _ in found} == set(NUMERIC_FIELDS)
    for path, value in found:
        wanted = NUMERIC_FIELDS[path.rsplit("/", 1)[1]]
        assert isinstance(value, wanted) and not isinstance(value, bool), (path, value)
        assert value > 0, (path, value)
    # tests/deploy/test_state_machine.py: a real ASL validator on the same definition


# -- Lambda: per-function timeout and memory --------------------------------------------------

#: API Gateway gives up on an integration after 29 s, whatever the Lambda's timeout
API_GATEWAY_TIMEOUT = 29
HANDLERS = ("api_handler", "on_upload_event", "on_build_event", "on_glance_import",
            "on_cleanup_schedule")  # fmt: skip


def _sqs_handlers() -> dict[str, str]:
    """Chalice function name -> the queue it consumes, as app.py declares them."""
    import app as app_module

    return {
        source.name: source.queue
        for source in app_module.app.event_sources
        if type(source).__name__ == "SQSEventConfig"
    }


def _lambda_functions() -> dict[str, dict[str, Any]]:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text(encoding="utf-8"))
    functions: dict[str, dict[str, Any]] = config["stages"]["dev"].get("lambda_functions", {})
    return functions


def test_every_function_sets_its_timeout_and_memory() -> None:
    """Chalice's default is 60 s and 128 MB for every function: too little memory for the API,
    and a queue handler's timeout must be chosen against its queue."""
    functions = _lambda_functions()
    assert set(_sqs_handlers()) <= set(HANDLERS)
    for name in HANDLERS:
        settings = functions.get(name, {})
        assert isinstance(settings.get("lambda_timeout"), int), (name, settings)
        assert isinstance(settings.get("lambda_memory_size"), int), (name, settings)
        assert 1 <= settings["lambda_timeout"] <= 900, (name, settings)
        assert 128 <= settings["lambda_memory_size"] <= 10240, (name, settings)


def test_a_queue_handler_s_timeout_fits_its_queue_s_visibility_timeout() -> None:
    """Lambda refuses an SQS event source whose queue's visibility timeout is shorter than the
    function's timeout (CreateEventSourceMapping: "Queue visibility timeout ... is less than
    Function timeout"); moto and the local driver do not check."""
    functions = _lambda_functions()
    visibility = {spec.name: spec.visibility_timeout for spec in resources.queues()}
    for name, queue in _sqs_handlers().items():
        timeout = functions.get(name, {}).get("lambda_timeout", 60)
        assert timeout <= visibility[queue], (name, queue, timeout, visibility[queue])
    api = functions.get("api_handler", {}).get("lambda_timeout", 60)
    assert api <= API_GATEWAY_TIMEOUT, f"api_handler's timeout {api} s > API Gateway's 29 s"


def test_the_synthesized_functions_carry_the_configured_timeout_and_memory() -> None:
    """What `chalice package` puts in the template (read through the CDK synth): each
    function's Timeout and MemorySize are the config's."""
    from infra.deploy_check import synthesized

    synth = synthesized()
    assert synth.returncode == 0, synth.output[-3000:]
    found: dict[str, dict[str, Any]] = {}
    for template in synth.templates.values():
        for resource in template.get("Resources", {}).values():
            if resource.get("Type") not in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
                continue
            handler = str(resource.get("Properties", {}).get("Handler", ""))
            if handler.startswith("app."):
                found[handler] = resource["Properties"]
    functions = _lambda_functions()
    for name in HANDLERS:
        handler = "app.app" if name == "api_handler" else f"app.{name}"
        assert handler in found, f"no function with Handler {handler} in {sorted(found)}"
        properties, wanted = found[handler], functions.get(name, {})
        assert properties.get("Timeout") == wanted.get("lambda_timeout"), (name, properties)
        assert properties.get("MemorySize") == wanted.get("lambda_memory_size"), (name, properties)


# -- Glance: an inline download fits a Lambda response ----------------------------------------

#: Lambda's synchronous response limit (6 MB; counted as 6,000,000 bytes to be safe)
LAMBDA_RESPONSE_LIMIT = 6_000_000
HEADER_ALLOWANCE = 64 * 1024  # headers, status and JSON framing of the proxy response


def test_the_inline_limit_defaults_to_4_mib_and_refuses_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KILN_GLANCE_INLINE_DATA_MAX", raising=False)
    assert INLINE_BODY_MAX == 4 * 1024 * 1024
    assert Settings.from_env().glance_inline_data_max == INLINE_BODY_MAX
    monkeypatch.setenv("KILN_GLANCE_INLINE_DATA_MAX", str(INLINE_BODY_MAX + 1))
    with pytest.raises(ValueError, match="KILN_GLANCE_INLINE_DATA_MAX"):
        Settings.from_env()


def test_4_mib_base64_encoded_with_headers_fits_a_lambda_response() -> None:
    """API Gateway hands Lambda's binary bodies over base64-encoded, 4/3 of their size: above
    about 4.4 MiB of data, Lambda refuses the response (502) on AWS, where chalice's local
    server serves any size."""
    encoded = 4 * math.ceil(INLINE_BODY_MAX / 3)
    assert encoded + HEADER_ALLOWANCE < LAMBDA_RESPONSE_LIMIT
    headers = {"Content-Type": "application/octet-stream", "Content-MD5": "x" * 32,
               "Content-Length": str(INLINE_BODY_MAX)}  # fmt: skip
    response = Response(body=b"\0" * INLINE_BODY_MAX, status_code=200, headers=headers)
    proxy = response.to_dict(binary_types=["application/octet-stream"])
    assert proxy["isBase64Encoded"] is True
    assert len(base64.b64decode(proxy["body"])) == INLINE_BODY_MAX
    assert len(json.dumps(proxy)) + HEADER_ALLOWANCE < LAMBDA_RESPONSE_LIMIT


@pytest.fixture(scope="module")
def served(signing_keys: tuple[bytes, str]) -> Iterator[GlanceHttp]:
    """tests/glance's ``served``: the Glance face on Kiln's front and chalice's local server."""
    assert "KILN_GLANCE_INLINE_DATA_MAX" not in os.environ
    with glance_http(signing_keys) as http:
        yield http


@pytest.mark.parametrize("extra", [0, 1], ids=["exactly 4 MiB", "4 MiB + 1 byte"])
def test_a_glance_download_above_4_mib_from_the_chalice_route_is_a_redirect(
    served: GlanceHttp, extra: int
) -> None:
    """Through API Gateway (the Chalice route, not the local front that streams), exactly
    4 MiB comes inline and a byte more is a 303 to a presigned S3 URL."""
    data = os.urandom(INLINE_BODY_MAX + extra)
    image = served.image()
    served.upload(image, data)
    response = served.request(
        "GET",
        f"/v2/images/{image}/file",
        base=served.chalice,
        headers={"Accept": "application/octet-stream"},
    )
    if extra:
        assert response.status_code == 303, response.text[:300]
        assert "Signature=" in response.headers["Location"], response.headers
        assert response.content == b""
    else:
        assert response.status_code == 200, response.text[:300]
        assert response.content == data
