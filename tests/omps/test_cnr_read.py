"""Reads of the app registry over HTTP (omps-behaviour.md §14): the marketplace read path
(list → the ``default`` release's manifest → its blob by ``content.digest``), the shapes of a
package summary, a release manifest, a pull (raw and ``?format=json``) and a blob; Quay's
not-found messages; who sees what (private packages invisible in listings and refused to other
tenants and anonymous callers, public ones readable by anyone)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from typing import Any

import pytest
import yaml

from tests.conftest import Kiln
from tests.omps import cnr_helpers as c
from tests.omps.cnr_helpers import NAMESPACE, PACKAGE

NAME = f"{NAMESPACE}/{PACKAGE}"
NESTED = "kiln-nested"
MANIFEST_TYPE = "application/vnd.cnr.package-manifest.helm.v0.json"
CONTENT_TYPE = "application/vnd.cnr.package.helm.v0.tar+gzip"


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.body
    return response.json_body


def marketplace_read(kiln: Kiln, headers: dict[str, str]) -> dict[str, dict[str, bytes]]:
    """What operator-marketplace does: each listed package's default release, its blob."""
    found = {}
    for entry in ok(c.get(kiln, f"?namespace={NAMESPACE}", headers)):
        manifest = ok(c.get(kiln, f"/{entry['name']}/{entry['default']}/helm", headers))
        digest = manifest["content"]["digest"]
        blob = c.get(kiln, f"/{entry['name']}/blobs/sha256/{digest}", headers, **c.TARGZ)
        assert blob.status_code == 200, blob.body
        assert blob.headers["Content-Type"] == "application/x-gzip"
        assert hashlib.sha256(blob.body).hexdigest() == digest
        assert len(blob.body) == manifest["content"]["size"]
        found[entry["name"]] = c.members(blob.body)
    return found


def test_the_marketplace_read_path(kiln: Kiln) -> None:
    assert c.push(kiln, c.flat_blob(), "1.0.0").status_code == 200
    assert c.push(kiln, c.nested_blob(NESTED), "1.0.0", package=NESTED).status_code == 200
    assert c.push(kiln, c.nested_blob(NESTED), "2.0.0", package=NESTED).status_code == 200
    read = marketplace_read(kiln, c.bearer(kiln))
    assert sorted(read) == [NAME, f"{NAMESPACE}/{NESTED}"]
    flat = read[NAME]
    assert list(flat) == [f"{PACKAGE}-ab12cd34/bundle.yaml"]
    bundle = yaml.safe_load(flat[f"{PACKAGE}-ab12cd34/bundle.yaml"])
    packages = yaml.safe_load(bundle["data"]["packages"])
    assert packages[0]["packageName"] == PACKAGE
    nested = read[f"{NAMESPACE}/{NESTED}"]
    assert f"{NESTED}-ab12cd34/{NESTED}.package.yaml" in nested
    assert f"{NESTED}-ab12cd34/0.2.0/backup.crd.yaml" in nested


def test_a_package_summary(kiln: Kiln) -> None:
    for release in ("1.0.0", "10.0.0", "9.0.0", "10.0.0-rc.1", "2.0.0"):
        assert c.push(kiln, release=release).status_code == 200
    kpm = {"blob": c.b64(c.flat_blob()), "release": "1.0.0", "media_type": "kpm"}
    assert c.push(kiln, package="charts", body=kpm).status_code == 200
    listed = ok(c.get(kiln, f"?namespace={NAMESPACE}"))
    assert [item["name"] for item in listed] == [f"{NAMESPACE}/charts", NAME]
    summary = listed[1]
    stamps = (summary.pop("created_at"), summary.pop("updated_at"))
    assert summary == {
        "name": NAME,
        "namespace": NAMESPACE,
        "default": "10.0.0",
        "releases": ["10.0.0", "10.0.0-rc.1", "9.0.0", "2.0.0", "1.0.0"],  # highest first
        "manifests": ["helm"],
        "visibility": "private",
        "channels": None,
    }
    assert all(len(stamp) == 19 and stamp[10] == "T" for stamp in stamps)
    assert listed[0]["manifests"] == ["kpm"]
    # filters: media type, a name query (any case)
    helm = ok(c.get(kiln, f"?namespace={NAMESPACE}&media_type=helm"))
    assert [item["name"] for item in helm] == [NAME]
    assert [i["name"] for i in ok(c.get(kiln, f"?namespace={NAMESPACE}&query=CHART"))] == [
        f"{NAMESPACE}/charts"
    ]
    assert ok(c.get(kiln, "?namespace=nobody-here")) == []


def test_a_listing_needs_a_namespace(kiln: Kiln) -> None:
    for query in ("", "?namespace=", "?media_type=helm"):
        refused = c.error(c.get(kiln, query), 400)
        assert refused["code"] == "invalid-usage"
        assert refused["message"].startswith("Missing namespace")


def test_release_manifests(kiln: Kiln) -> None:
    blob = c.flat_blob()
    assert c.push(kiln, blob, "1.0.0").status_code == 200
    assert c.push(kiln, c.nested_blob(), "2.0.0").status_code == 200
    kpm = {"blob": c.b64(blob), "release": "1.0.0", "media_type": "kpm"}
    assert c.push(kiln, body=kpm).status_code == 200
    shown = ok(c.get(kiln, f"/{NAMESPACE}/{PACKAGE}/1.0.0/helm"))
    created = shown.pop("created_at")
    digest = hashlib.sha256(blob).hexdigest()
    content = {"digest": digest, "size": len(blob), "mediaType": CONTENT_TYPE, "urls": []}
    manifest = json.dumps({"mediaType": MANIFEST_TYPE, "content": content}, sort_keys=True)
    assert shown == {
        "channels": [],
        "package": NAME,
        "release": "1.0.0",
        "digest": "sha256:" + hashlib.sha256(manifest.encode()).hexdigest(),
        "mediaType": MANIFEST_TYPE,
        "metadata": None,
        "content": content,
    }
    listed = ok(c.get(kiln, f"/{NAMESPACE}/{PACKAGE}"))
    assert sorted((item["release"], item["mediaType"]) for item in listed) == [
        ("1.0.0", MANIFEST_TYPE),
        ("1.0.0", "application/vnd.cnr.package-manifest.kpm.v0.json"),
        ("2.0.0", MANIFEST_TYPE),
    ]
    stamps = [item["created_at"] for item in listed]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    assert "channels" not in listed[0]
    only_helm = ok(c.get(kiln, f"/{NAMESPACE}/{PACKAGE}?media_type=helm"))
    assert sorted(item["release"] for item in only_helm) == ["1.0.0", "2.0.0"]
    one = ok(c.get(kiln, f"/{NAMESPACE}/{PACKAGE}/1.0.0"))
    assert sorted(item["mediaType"] for item in one) == sorted(
        [MANIFEST_TYPE, "application/vnd.cnr.package-manifest.kpm.v0.json"]
    )
    assert all(item["created_at"] == created for item in one if item["mediaType"] == MANIFEST_TYPE)
    # "default": the highest release
    assert ok(c.get(kiln, f"/{NAMESPACE}/{PACKAGE}/default/helm"))["release"] == "2.0.0"


def test_pulls_raw_and_json(kiln: Kiln) -> None:
    blob = c.flat_blob()
    assert c.push(kiln, blob, "1.0.0").status_code == 200
    raw = c.get(kiln, f"/{NAMESPACE}/{PACKAGE}/1.0.0/helm/pull", **c.TARGZ)
    assert raw.status_code == 200 and raw.body == blob
    assert raw.headers["Content-Type"] == "application/x-gzip"
    assert raw.headers["Content-Disposition"] == f"{NAMESPACE}_{PACKAGE}_1.0.0.tar.gz"
    pulled = ok(c.get(kiln, f"/{NAMESPACE}/{PACKAGE}/1.0.0/helm/pull?format=json"))
    assert pulled == {
        "package": NAME,
        "blob": base64.b64encode(blob).decode(),
        "release": "1.0.0",
        "filename": f"{NAMESPACE}_{PACKAGE}_1.0.0.tar.gz",
    }
    digest = hashlib.sha256(blob).hexdigest()
    by_digest = ok(c.get(kiln, f"/{NAMESPACE}/{PACKAGE}/blobs/sha256/{digest}?format=json"))
    assert by_digest == {
        "package": NAME,
        "blob": base64.b64encode(blob).decode(),
        "release": digest,
        "filename": f"{NAMESPACE}_{PACKAGE}_{digest[:8]}.tar.gz",
    }
    with tarfile.open(fileobj=io.BytesIO(raw.body), mode="r:gz") as tar:
        assert tar.getnames() == [f"{PACKAGE}-ab12cd34", f"{PACKAGE}-ab12cd34/bundle.yaml"]


def test_not_found_in_quays_words(kiln: Kiln) -> None:
    blob = c.flat_blob()
    assert c.push(kiln, blob, "1.0.0").status_code == 200
    assert c.push(kiln, c.nested_blob(NESTED), "1.0.0", package=NESTED).status_code == 200
    cases = {
        f"/{NAMESPACE}/{PACKAGE}/7.7.7/helm": ("7.7.7", "helm"),
        f"/{NAMESPACE}/{PACKAGE}/1.0.0/kpm": ("1.0.0", "kpm"),
        f"/{NAMESPACE}/{PACKAGE}/7.7.7/helm/pull": ("7.7.7", "helm"),
        f"/{NAMESPACE}/{PACKAGE}/7.7.7": ("7.7.7", None),
        f"/{NAMESPACE}/{PACKAGE}/{'9' * 300}/helm": ("9" * 300, "helm"),
        f"/{NAMESPACE}/missing": (None, None),
        f"/{NAMESPACE}/missing/1.0.0/helm": ("1.0.0", "helm"),
        f"/{NAMESPACE}/{PACKAGE}/blobs/sha256/{'0' * 64}": ("0" * 64, None),
        f"/{NAMESPACE}/{PACKAGE}/blobs/sha256/nothex": ("nothex", None),
    }
    for path, (release, media_type) in cases.items():
        name = "/".join(path.split("/")[1:3])
        refused = c.error(c.get(kiln, path, **c.TARGZ), 404)
        assert refused == {
            "code": "package-not-found",
            "message": f"package {name} doesn't exist, v: {release}, type: {media_type}",
            "details": {"package": name, "release": release, "media_type": media_type},
        }, path
    # a blob is found through the package that holds it only
    nested_digest = hashlib.sha256(c.nested_blob(NESTED)).hexdigest()
    path = f"/{NAMESPACE}/{PACKAGE}/blobs/sha256/{nested_digest}"
    assert c.error(c.get(kiln, path, **c.TARGZ), 404)["code"] == "package-not-found"


def test_private_packages_are_their_tenants(kiln: Kiln) -> None:
    assert c.push(kiln).status_code == 200  # tenant demo, private
    beta, anonymous = c.bearer(kiln, "beta"), {}
    for headers in (beta, anonymous):
        assert ok(c.get(kiln, f"?namespace={NAMESPACE}", headers)) == []
        for path in (
            f"/{NAMESPACE}/{PACKAGE}",
            f"/{NAMESPACE}/{PACKAGE}/1.0.0",
            f"/{NAMESPACE}/{PACKAGE}/1.0.0/helm",
            f"/{NAMESPACE}/{PACKAGE}/1.0.0/helm/pull",
            f"/{NAMESPACE}/{PACKAGE}/blobs/sha256/{hashlib.sha256(c.flat_blob()).hexdigest()}",
            f"/{NAMESPACE}/{PACKAGE}/1.0.0/helm/olm-bundle",
            # a package that does not exist is refused the same way: no existence leaks
            f"/{NAMESPACE}/missing",
            f"/{NAMESPACE}/missing/1.0.0/helm",
        ):
            refused = c.error(c.get(kiln, path, headers, Accept="*/*"), 403)
            name = "/".join(path.split("/")[1:3])
            assert refused == {
                "code": "forbidden",
                "message": f"Unauthorized access for: {name}",
                "details": {"package": name, "scopes": ["pull"]},
            }, path
    # admins and workers read every tenant's packages
    for role in ("admin", "worker"):
        assert len(marketplace_read(kiln, c.bearer(kiln, "ops", role))) == 1


@pytest.mark.parametrize("reader", ["anonymous", "beta"])
def test_public_packages_are_anyones(kiln: Kiln, reader: str) -> None:
    body = {"blob": c.b64(c.flat_blob()), "release": "1.0.0", "media_type": "helm"}
    assert c.push(kiln, body={**body, "visibility": "public"}).status_code == 200
    assert c.push(kiln, package="secret").status_code == 200
    headers = {} if reader == "anonymous" else c.bearer(kiln, "beta")
    assert list(marketplace_read(kiln, headers)) == [NAME]
    assert c.get(kiln, f"/{NAMESPACE}/{PACKAGE}/1.0.0/helm/pull", headers, **c.TARGZ).body == (
        c.flat_blob()
    )
