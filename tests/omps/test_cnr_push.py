"""Pushes to the app registry over HTTP, as operator-courier sends them (omps-behaviour.md §7,
§14): ``{"status": "ok"}``; Quay's refusals in Quay's order and words (names, the right to
create or push, missing fields, the blob, the release); duplicates (409, with the trailing
space) and ``?force=true``; who may push where (claimed namespaces, configured tenants,
admins); the visibility a push may ask for when it creates a package."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import tarfile
from typing import Any

import pytest
from pynamodb.exceptions import CancellationReason, TransactWriteError, VerboseClientError
from pynamodb.transactions import TransactWrite

from chalicelib.domain.appregistry import release_store
from tests.conftest import Kiln
from tests.omps import cnr_helpers as c
from tests.omps.cnr_helpers import NAMESPACE, PACKAGE

NAME = f"{NAMESPACE}/{PACKAGE}"


def pulled(kiln: Kiln, release: str, headers: dict[str, str] | None = None) -> bytes:
    answer = c.get(kiln, f"/{NAMESPACE}/{PACKAGE}/{release}/helm/pull", headers, **c.TARGZ)
    assert answer.status_code == 200, answer.body
    return bytes(answer.body)


def test_a_courier_push_stores_the_release(kiln: Kiln) -> None:
    blob = c.flat_blob()
    answer = c.push(kiln, blob, "1.0.0")
    assert answer.status_code == 200, answer.body
    assert answer.json_body == {"status": "ok"}
    assert pulled(kiln, "1.0.0") == blob
    listed = c.get(kiln, f"?namespace={NAMESPACE}").json_body
    assert [(item["name"], item["releases"], item["visibility"]) for item in listed] == [
        (NAME, ["1.0.0"], "private")
    ]


def test_the_same_release_under_another_media_type_is_another_release(kiln: Kiln) -> None:
    assert c.push(kiln, release="1.0.0").status_code == 200
    other = {"blob": c.b64(c.nested_blob()), "release": "1.0.0", "media_type": "kpm"}
    assert c.push(kiln, body=other).status_code == 200
    shown = c.get(kiln, f"/{NAMESPACE}/{PACKAGE}/1.0.0").json_body
    assert sorted(item["mediaType"] for item in shown) == [
        "application/vnd.cnr.package-manifest.helm.v0.json",
        "application/vnd.cnr.package-manifest.kpm.v0.json",
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "Missing release"),
        ({"blob": "x", "media_type": "helm"}, "Missing release"),
        ({"blob": "x", "release": "1.0.0"}, "Missing media_type"),
        ({"release": "1.0.0", "media_type": "helm"}, "Missing blob"),
    ],
)
def test_missing_fields_are_invalid_usage(kiln: Kiln, body: dict[str, Any], message: str) -> None:
    refused = c.error(c.push(kiln, body=body), 400)
    assert (refused["code"], refused["message"]) == ("invalid-usage", message)


def test_a_body_that_is_not_a_json_object_has_no_fields(kiln: Kiln) -> None:
    for raw in ("[1, 2]", "{not json", ""):
        answer = kiln.client.http.post(
            f"{c.CNR}/{NAMESPACE}/{PACKAGE}",
            headers={"Content-Type": "application/json", **c.bearer(kiln)},
            body=raw,
        )
        assert c.error(answer, 400)["message"] == "Missing release"


def tar_member(name: str, kind: bytes = tarfile.REGTYPE) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.size = 0 if kind != tarfile.REGTYPE else 2
        tar.addfile(info, io.BytesIO(b"x\n") if kind == tarfile.REGTYPE else None)
    return buffer.getvalue()


def corrupt_crc(blob: bytes) -> bytes:
    """The gzip with one bit of its CRC trailer flipped."""
    return blob[:-8] + bytes([blob[-8] ^ 1]) + blob[-7:]


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        ("not base64 at all!", "it is not base64"),
        (12, "it must be a base64 string"),
        (None, "it must be a base64 string"),
        (c.b64(b"plain text, not gzip"), "it is not gzip data"),
        (c.b64(gzip.compress(b"gzip of a text that is no tar", mtime=0)), "it is not a gzip tar"),
        (c.b64(gzip.compress(b"", mtime=0)), "it is not a gzip tar"),
        (c.b64(c.flat_blob()[:-20]), "it is not a gzip tar"),
        (c.b64(corrupt_crc(c.flat_blob())), "CRC check failed"),
        (c.b64(tar_member("../escape.yaml")), "points outside the archive"),
        (c.b64(tar_member("top/../../escape.yaml")), "points outside the archive"),
        (c.b64(tar_member("/etc/passwd")), "is absolute"),
    ],
)
def test_a_blob_must_be_base64_of_a_gzip_tar(kiln: Kiln, blob: object, reason: str) -> None:
    body = {"blob": blob, "release": "1.0.0", "media_type": "helm"}
    refused = c.error(c.push(kiln, body=body), 400)
    assert refused["code"] == "invalid-usage"
    assert refused["message"].startswith("Invalid blob: ")
    assert reason in refused["message"]
    assert c.get(kiln, f"/{NAMESPACE}/{PACKAGE}/1.0.0/helm").status_code == 404


def test_a_blob_with_line_breaks_is_base64_still(kiln: Kiln) -> None:
    blob = c.flat_blob()
    wrapped = base64.encodebytes(blob).decode()  # 76-character lines
    body = {"blob": wrapped, "release": "1.0.0", "media_type": "helm"}
    assert c.push(kiln, body=body).status_code == 200
    assert pulled(kiln, "1.0.0") == blob


@pytest.mark.parametrize(
    ("release", "shown"),
    [("1.x", "1.x"), ("01.0.0", "01.0.0"), ("v1.0.0", "v1.0.0"), (1, "1"), (None, "null")],
)
def test_a_release_must_be_a_semantic_version(kiln: Kiln, release: object, shown: str) -> None:
    body = {"blob": c.b64(c.flat_blob()), "release": release, "media_type": "helm"}
    refused = c.error(c.push(kiln, body=body), 422)
    assert refused["code"] == "invalid-release"
    assert refused["message"] == f"Invalid version string: '{shown}'"
    assert refused["details"] == {"version": shown}


@pytest.mark.parametrize("release", ["9.0.0-rc1", "1.0.0-alpha.1+build.5", "0.0.1"])
def test_pre_releases_and_build_metadata_are_releases(kiln: Kiln, release: str) -> None:
    assert c.push(kiln, release=release).status_code == 200
    assert c.get(kiln, f"/{NAMESPACE}/{PACKAGE}/{release}/helm").status_code == 200


@pytest.mark.parametrize(
    ("namespace", "package"), [(NAMESPACE, "Kiln-Demo"), (NAMESPACE, "-demo"), ("-ops", "demo")]
)
def test_a_bad_repository_name_is_invalid_usage(kiln: Kiln, namespace: str, package: str) -> None:
    refused = c.error(c.push(kiln, namespace=namespace, package=package), 400)
    assert refused["message"] == f"invalid repository name: {namespace}/{package}"


def test_an_unknown_media_type_is_invalid_usage(kiln: Kiln) -> None:
    body = {"blob": c.b64(c.flat_blob()), "release": "1.0.0", "media_type": "oci"}
    refused = c.error(c.push(kiln, body=body), 400)
    assert refused["message"] == "Unsupported media type: oci"


def test_a_duplicate_release_is_package_exists_and_keeps_the_first(kiln: Kiln) -> None:
    first = c.flat_blob()
    assert c.push(kiln, first, "2.0.0").status_code == 200
    refused = c.error(c.push(kiln, c.nested_blob(), "2.0.0"), 409)
    assert refused == {
        "code": "package-exists",
        "message": f"{NAME} - 2.0.0 - helm exists already ",
        "details": {"package": NAME, "release": "2.0.0", "media_type": "helm"},
    }
    assert pulled(kiln, "2.0.0") == first
    # ?force= must be exactly "true", as Quay reads it
    assert c.push(kiln, c.nested_blob(), "2.0.0", query="?force=1").status_code == 409


def test_force_replaces_a_release(kiln: Kiln) -> None:
    assert c.push(kiln, c.flat_blob(), "1.0.0").status_code == 200
    replacement = c.nested_blob()
    answer = c.push(kiln, replacement, "1.0.0", query="?force=true")
    assert answer.status_code == 200, answer.body
    assert pulled(kiln, "1.0.0") == replacement
    listed = c.get(kiln, f"?namespace={NAMESPACE}").json_body
    assert listed[0]["releases"] == ["1.0.0"]
    shown = c.get(kiln, f"/{NAMESPACE}/{PACKAGE}").json_body
    assert [item["content"]["size"] for item in shown] == [len(replacement)]
    # forcing a release that does not exist yet simply creates it
    assert c.push(kiln, replacement, "2.0.0", query="?force=true").status_code == 200
    # force is for writers only
    refused = c.error(c.push(kiln, query="?force=true", headers=c.bearer(kiln, "beta")), 403)
    assert refused["details"]["scopes"] == ["push"]


def test_a_claimed_namespace_refuses_other_tenants(kiln: Kiln) -> None:
    assert c.push(kiln).status_code == 200  # tenant demo claims kiln-ops
    beta = c.bearer(kiln, "beta")
    refused = c.error(c.push(kiln, release="2.0.0", headers=beta), 403)
    assert refused == {
        "code": "forbidden",
        "message": f"Unauthorized access for: {NAME}",
        "details": {"package": NAME, "scopes": ["push"]},
    }
    created = c.error(c.push(kiln, package="other", headers=beta), 403)
    assert created["message"] == f"Unauthorized access for: {NAMESPACE}/other"
    assert created["details"] == {"package": f"{NAMESPACE}/other", "scopes": ["create"]}
    # another user of tenant demo may push; beta has a namespace of its own
    assert c.push(kiln, package="other").status_code == 200
    assert c.push(kiln, namespace="beta-ops", headers=beta).status_code == 200
    # an admin may push anywhere, without claiming
    assert c.push(kiln, release="3.0.0", headers=c.bearer(kiln, "ops", "admin")).status_code == 200
    assert (
        c.push(kiln, namespace="admins", headers=c.bearer(kiln, "ops", "admin")).status_code == 200
    )
    assert c.push(kiln, namespace="admins", release="2.0.0", headers=beta).status_code == 200


def test_configured_tenants_are_the_writers(kiln: Kiln) -> None:
    c.robots(kiln, {NAMESPACE: {"tenants": ["beta", "gamma"]}})
    refused = c.error(c.push(kiln), 403)
    assert refused["details"]["scopes"] == ["create"]
    assert c.push(kiln, headers=c.bearer(kiln, "beta")).status_code == 200
    assert c.push(kiln, release="2.0.0", headers=c.bearer(kiln, "gamma")).status_code == 200
    assert c.error(c.push(kiln, release="3.0.0"), 403)["details"]["scopes"] == ["push"]
    # a worker reads every tenant's packages but writes none
    worker = c.bearer(kiln, "ops", "worker")
    assert c.error(c.push(kiln, release="4.0.0", headers=worker), 403)["code"] == "forbidden"


def test_a_push_may_make_a_new_package_public(kiln: Kiln) -> None:
    body = {"blob": c.b64(c.flat_blob()), "release": "1.0.0", "media_type": "helm"}
    assert c.push(kiln, body={**body, "visibility": "public"}).status_code == 200
    listed = c.get(kiln, f"?namespace={NAMESPACE}", headers={}).json_body
    assert [(item["name"], item["visibility"]) for item in listed] == [(NAME, "public")]
    # only when it creates the package, as Quay's
    second = {**body, "release": "2.0.0", "visibility": "private"}
    assert c.push(kiln, body=second).status_code == 200
    assert c.get(kiln, f"?namespace={NAMESPACE}", headers={}).json_body[0]["visibility"] == (
        "public"
    )
    refused = c.error(c.push(kiln, package="other", body={**body, "visibility": "open"}), 400)
    assert refused["message"] == "Invalid visibility: open"


def test_a_push_body_is_checked_like_any_json_body(kiln: Kiln) -> None:
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    body = {"blob": c.b64(c.flat_blob()), "release": "1.0.0", "media_type": "helm", "x": deep}
    refused = c.error(c.push(kiln, body=body), 400)
    assert refused["message"].startswith("Invalid JSON body: ")
    # a blob far longer than any other field may be is fine
    noise = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(4096))
    big = c.targz({"bundle.yaml": c.bundle_yaml(), "noise.bin": noise})
    assert len(c.b64(big)) > 65536
    assert c.push(kiln, big, "2.0.0").status_code == 200
    assert pulled(kiln, "2.0.0") == big


def conflicting(times: int) -> type[TransactWrite]:
    """A TransactWrite whose first ``times`` commits lose a race with another transaction on
    the same items, as DynamoDB reports it (moto applies transactions one at a time)."""
    left = [times]

    class Conflicting(TransactWrite):
        def _commit(self) -> Any:
            if left[0] > 0:
                left[0] -= 1
                cause = VerboseClientError(
                    {"Error": {"Code": "TransactionCanceledException", "Message": "race"}},
                    "TransactWriteItems",
                    cancellation_reasons=[None, CancellationReason(code="TransactionConflict")],
                )
                raise TransactWriteError("Failed to write transaction items", cause=cause)
            return super()._commit()

    return Conflicting


def test_a_write_that_loses_a_race_is_tried_again(
    kiln: Kiln, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A conflict is not a duplicate: the push (explicit release) and the delete both land."""
    monkeypatch.setattr(release_store, "TransactWrite", conflicting(3))
    assert c.push(kiln, release="1.0.0").status_code == 200
    monkeypatch.setattr(release_store, "TransactWrite", conflicting(2))
    assert c.delete(kiln, f"/{NAMESPACE}/{PACKAGE}/1.0.0/helm").status_code == 200
    monkeypatch.setattr(release_store, "TransactWrite", conflicting(1))
    assert c.push(kiln, c.nested_blob(), "1.0.0", query="?force=true").status_code == 200
    listed = c.get(kiln, f"?namespace={NAMESPACE}").json_body
    assert [item["releases"] for item in listed] == [["1.0.0"]]
