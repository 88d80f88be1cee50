"""Workers' changes to a Cachito request over HTTP (PATCH: transitions, repeated states,
environment variables, errors; added configuration files) and what a request produced: its
environment variables, configuration files, logs and the bundle download with its Digest."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from chalicelib.domain.cachito.request_states import WORKERS_ONLY, check_transition
from chalicelib.errors import BadRequest
from chalicelib.faces.cachito.routing import NOT_FOUND
from tests.cachito import helpers as h
from tests.cachito.helpers import V1
from tests.conftest import Kiln


def error(response: Any, status: int = 400) -> str:
    assert response.status_code == status, response.body
    return str(response.json_body["error"])


# -- PATCH /requests/{id} -------------------------------------------------------------------------
def test_only_workers_may_patch(kiln: Kiln) -> None:
    created = h.create(kiln)
    change = {"state": "failed", "state_reason": "no"}
    for role in ("user", "admin"):
        assert error(h.patch(kiln, created["id"], change, role=role), 403) == WORKERS_ONLY
    assert error(h.patch(kiln, 999, change), 404) == NOT_FOUND
    assert h.get(kiln, f"/requests/{created['id']}").json_body["state"] == "in_progress"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (None, "None is not of type 'object'"),
        ({}, "{} should be non-empty"),
        (
            {"dependencies": []},
            "Additional properties are not allowed ('dependencies' was unexpected)",
        ),
        (
            {"state": "done", "state_reason": "x"},
            "'done' is not one of ['in_progress', 'complete', 'failed', 'stale']",
        ),
        ({"state": "complete"}, 'The "state_reason" key is required when "state" is supplied'),
        ({"state_reason": "x"}, 'The "state" key is required when "state_reason" is supplied'),
        (
            {"environment_variables": {"A": {"value": "1", "kind": "secret"}}},
            "The environment variable kind, secret, is not supported",
        ),
        ({"environment_variables": {"A": {"value": "1"}}}, "'kind' is a required property"),
        ({"packages_count": -1}, "-1 is less than the minimum of 0"),
        ({"packages_count": "1"}, "'1' is not of type 'integer'"),
        ({"error_origin": "user"}, "'user' is not one of ['client', 'server']"),
    ],
)
def test_patch_refusals(kiln: Kiln, change: Any, message: str) -> None:
    created = h.create(kiln)
    assert error(h.patch(kiln, created["id"], change)) == message


def test_an_unknown_state_outside_the_schema_names_the_valid_ones() -> None:
    with pytest.raises(BadRequest) as raised:
        check_transition("in_progress", "done")
    assert raised.value.detail == (
        'The state "done" is invalid. It must be one of: complete, failed, in_progress, stale.'
    )


def test_patch_walks_the_states_and_a_repeat_adds_no_history(kiln: Kiln) -> None:
    request_id = h.create(kiln)["id"]
    step = {"state": "in_progress", "state_reason": "Fetching the gomod dependencies"}
    for _ in range(2):
        answered = h.patch(kiln, request_id, step)
        assert answered.status_code == 200 and answered.body in (b"", "")
    history = h.get(kiln, f"/requests/{request_id}").json_body["state_history"]
    assert [entry["state_reason"] for entry in history] == [
        "Fetching the gomod dependencies",
        "The request was initiated",
    ]
    done = {
        "state": "complete",
        "state_reason": "Completed successfully",
        "packages_count": 3,
        "dependencies_count": 7,
        "environment_variables": {"GOSUMDB": {"value": "off", "kind": "literal"}},
    }
    assert h.patch(kiln, request_id, done).status_code == 200
    assert h.patch(kiln, request_id, done).status_code == 200  # a task run twice: no error
    listed = h.get(kiln, "/requests").json_body["items"][0]
    assert (listed["state"], listed["packages"], listed["dependencies"]) == ("complete", 3, 7)
    assert listed["environment_variables"] == {"GOSUMDB": "off"}
    back = {"state": "in_progress", "state_reason": "again"}
    assert error(h.patch(kiln, request_id, back)) == (
        "State transition is not allowed from complete to in_progress."
    )
    failed = {"state": "failed", "state_reason": "late"}
    assert error(h.patch(kiln, request_id, failed)) == (
        "State transition is not allowed from complete to failed."
    )
    stale = {"state": "stale", "state_reason": "The request has expired"}
    assert h.patch(kiln, request_id, stale).status_code == 200
    assert h.patch(kiln, request_id, stale).status_code == 200  # the same again: nothing
    assert error(h.patch(kiln, request_id, {"state": "stale", "state_reason": "other"})) == (
        "State transition is not allowed from stale to stale."
    )
    shown = h.get(kiln, f"/requests/{request_id}").json_body
    assert [entry["state"] for entry in shown["state_history"]] == [
        "stale",
        "complete",
        "in_progress",
        "in_progress",
    ]


def test_a_failed_patch_records_the_error_origin_and_type(kiln: Kiln) -> None:
    request_id = h.create(kiln)["id"]
    ignored = {"packages_count": 0, "error_origin": "server", "error_type": "X"}
    assert h.patch(kiln, request_id, ignored).status_code == 200
    assert "error_origin" not in h.get(kiln, f"/requests/{request_id}").json_body
    failure = {
        "state": "failed",
        "state_reason": "Processing gomod dependencies failed",
        "error_origin": "server",
        "error_type": "GoModError",
    }
    assert h.patch(kiln, request_id, failure).status_code == 200
    shown = h.get(kiln, f"/requests/{request_id}").json_body
    assert (shown["error_origin"], shown["error_type"]) == ("server", "GoModError")
    filtered = h.get(kiln, "/requests?error_type=GoModError&error_origin=server").json_body
    assert [item["id"] for item in filtered["items"]] == [request_id]


def test_environment_variables_are_ordered_by_name(kiln: Kiln) -> None:
    request_id = h.create(kiln)["id"]
    variables = {
        "GOSUMDB": {"value": "off", "kind": "literal"},
        "GOCACHE": {"value": "deps/gomod", "kind": "path"},
    }
    h.patch(kiln, request_id, {"environment_variables": variables})
    h.patch(kiln, request_id, {"environment_variables": {"GOPATH": variables["GOCACHE"]}})
    answered = h.get(kiln, f"/requests/{request_id}/environment-variables")
    assert answered.status_code == 200
    assert list(answered.json_body) == ["GOCACHE", "GOPATH", "GOSUMDB"]
    assert answered.json_body["GOSUMDB"] == {"value": "off", "kind": "literal"}
    assert error(h.get(kiln, f"/requests/{request_id}/environment-variables", tenant="b"), 404)


# -- configuration files --------------------------------------------------------------------------
def _file(path: str, content: bytes = b"x") -> dict[str, str]:
    return {"content": base64.b64encode(content).decode(), "path": path, "type": "base64"}


def test_workers_add_configuration_files_and_anyone_reads_them_sorted(kiln: Kiln) -> None:
    request_id = h.create(kiln, pkg_managers=["npm"])["id"]
    path = f"{V1}/requests/{request_id}/configuration-files"
    assert h.get(kiln, f"/requests/{request_id}/configuration-files").json_body == []
    files = [_file("app/z/.npmrc"), _file("app/.npmrc", b"registry=x")]
    assert error(kiln.call("POST", path, files), 403) == WORKERS_ONLY
    answered = kiln.call("POST", path, files, role="worker")
    assert answered.status_code == 204
    assert kiln.call("POST", path, files[:1], role="worker").status_code == 204  # kept once
    shown = h.get(kiln, f"/requests/{request_id}/configuration-files").json_body
    assert shown == sorted(files, key=lambda f: f["path"])
    h.complete(kiln, request_id)  # the package data's files join them
    shown = h.get(kiln, f"/requests/{request_id}/configuration-files").json_body
    assert [f["path"] for f in shown] == [
        "app/.npmrc",
        "app/client/package-lock.json",
        "app/z/.npmrc",
    ]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "{} is not of type 'array'"),
        ([{"path": "app/a", "type": "base64"}], "'content' is a required property"),
        ([{**_file("app/a"), "type": "plain"}], "'plain' is not one of ['base64']"),
        (
            [{**_file("app/a"), "mode": 1}],
            "Additional properties are not allowed ('mode' was unexpected)",
        ),
        ([{**_file("app/a"), "content": "***"}], "not base64"),
        ([_file("../etc/passwd")], "stay inside it"),
        ([_file("/etc/passwd")], "stay inside it"),
    ],
)
def test_configuration_file_refusals(kiln: Kiln, files: Any, message: str) -> None:
    request_id = h.create(kiln)["id"]
    path = f"{V1}/requests/{request_id}/configuration-files"
    assert message in error(kiln.call("POST", path, files, role="worker"))


# -- download -------------------------------------------------------------------------------------
def _download(kiln: Kiln, request_id: int, **options: Any) -> Any:
    headers = {**kiln.headers(**options), **h.GZIP}
    return kiln.call("GET", f"{V1}/requests/{request_id}/download", headers=headers)


def test_download_answers_the_bundle_with_its_digest(kiln: Kiln) -> None:
    request_id = h.create(kiln)["id"]
    not_yet = 'The request must be in the "complete" state before downloading the archive'
    assert error(_download(kiln, request_id)) == not_yet
    data = h.complete(kiln, request_id, bundle=h.bundle_archive({"app/a": b"a" * 5000}))
    answered = _download(kiln, request_id)
    assert answered.status_code == 200 and answered.body == data
    expected = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert answered.headers["Digest"] == f"sha-256={expected}"
    assert answered.headers["Content-Type"] == "application/gzip"
    assert answered.headers["Content-Disposition"] == (
        f"attachment; filename=cachito-{request_id}.tar.gz"
    )
    assert error(_download(kiln, request_id, tenant="beta"), 404) == NOT_FOUND
    assert _download(kiln, request_id, tenant="beta", role="admin").status_code == 200


def test_a_changed_or_missing_bundle_is_a_500_never_other_bytes(kiln: Kiln) -> None:
    request_id = h.create(kiln)["id"]
    h.complete(kiln, request_id)
    key = h.record(request_id).bundle_key
    bucket = kiln.provisioned.bucket
    h.s3().put_object(Bucket=bucket, Key=key, Body=h.bundle_archive({"app/evil": b"x"}))
    changed = f"Checksum of bundle archive {request_id}.tar.gz has changed."
    assert error(_download(kiln, request_id), 500) == changed
    h.s3().delete_object(Bucket=bucket, Key=key)
    assert error(_download(kiln, request_id), 500) == changed


def test_a_stale_request_has_no_bundle_and_its_logs_are_gone(kiln: Kiln) -> None:
    request_id = h.create(kiln)["id"]
    h.complete(kiln, request_id)
    assert h.get(kiln, f"/requests/{request_id}/logs").status_code == 200
    stale = {"state": "stale", "state_reason": "The request has expired"}
    assert h.patch(kiln, request_id, stale).status_code == 200
    assert error(_download(kiln, request_id)) == (
        'The request must be in the "complete" state before downloading the archive'
    )
    assert error(h.get(kiln, f"/requests/{request_id}/logs"), 410) == (
        f"The logs for the Cachito request {request_id} no longer exist"
    )
    key = h.record(request_id).bundle_key
    listed = h.s3().list_objects_v2(Bucket=kiln.provisioned.bucket, Prefix=key)
    assert listed.get("KeyCount", 0) == 0  # the bundle itself was removed
    shown = h.get(kiln, f"/requests/{request_id}").json_body
    assert shown["packages"] == [] and shown["state"] == "stale"


# -- logs -----------------------------------------------------------------------------------------
def test_logs_while_running_once_ended_and_without_a_log(kiln: Kiln) -> None:
    request_id = h.create(kiln)["id"]
    logs = f"/requests/{request_id}/logs"
    empty = h.get(kiln, logs)
    assert empty.status_code == 200 and empty.body in (b"", "")
    assert empty.headers["Content-Type"].startswith("text/plain")
    job_id = h.record(request_id).job_id
    bucket = kiln.provisioned.bucket
    h.s3().put_object(Bucket=bucket, Key=f"jobs/{job_id}/log/000001", Body=b"Fetching source\n")
    assert h.get(kiln, logs).body == b"Fetching source\n"  # the live chunks
    h.complete(kiln, request_id, log=b"whole log\n")
    assert h.get(kiln, logs).body == b"whole log\n"
    assert error(h.get(kiln, logs, tenant="beta"), 404) == NOT_FOUND
    other = h.create(kiln, pkg_managers=["npm"])["id"]
    h.complete(kiln, other, log=None)
    assert error(h.get(kiln, f"/requests/{other}/logs"), 404) == NOT_FOUND
