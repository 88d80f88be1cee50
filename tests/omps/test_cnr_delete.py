"""Deleting releases from the app registry over HTTP (omps-behaviour.md §10, §14):
``DELETE …/<pkg>/<release>/<media_type>`` answers ``{"status": "deleted", ...}``; the release is
gone (404 in Quay's words) and may be pushed again; the emptied package is kept but no longer
listed; only its writers may delete (403 with Quay's ``["pull", "push"]`` scopes, 401 for
anonymous callers)."""

from __future__ import annotations

from tests.conftest import Kiln
from tests.omps import cnr_helpers as c
from tests.omps.cnr_helpers import NAMESPACE, PACKAGE

NAME = f"{NAMESPACE}/{PACKAGE}"
RELEASE = f"/{NAMESPACE}/{PACKAGE}/{{}}/helm"


def test_delete_a_release(kiln: Kiln) -> None:
    for release in ("1.0.0", "2.0.0"):
        assert c.push(kiln, release=release).status_code == 200
    answer = c.delete(kiln, RELEASE.format("2.0.0"))
    assert answer.status_code == 200, answer.body
    assert answer.json_body == {"status": "deleted", "package": NAME, "release": "2.0.0"}
    refused = c.error(c.get(kiln, RELEASE.format("2.0.0")), 404)
    assert refused["message"] == f"package {NAME} doesn't exist, v: 2.0.0, type: helm"
    listed = c.get(kiln, f"?namespace={NAMESPACE}").json_body
    assert [(item["releases"], item["default"]) for item in listed] == [(["1.0.0"], "1.0.0")]
    # deleted twice: not found, in Quay's words
    again = c.error(c.delete(kiln, RELEASE.format("2.0.0")), 404)
    assert again == {
        "code": "package-not-found",
        "message": f"package {NAME} doesn't exist, v: 2.0.0, type: helm",
        "details": {"package": NAME, "release": "2.0.0", "media_type": "helm"},
    }
    # the release may be pushed again, with other content
    assert c.push(kiln, c.nested_blob(), "2.0.0").status_code == 200
    assert c.get(kiln, RELEASE.format("2.0.0")).status_code == 200


def test_the_emptied_package_is_kept_unlisted(kiln: Kiln) -> None:
    assert c.push(kiln, release="1.0.0").status_code == 200
    kpm = {"blob": c.b64(c.flat_blob()), "release": "1.0.0", "media_type": "kpm"}
    assert c.push(kiln, body=kpm).status_code == 200
    assert c.delete(kiln, RELEASE.format("1.0.0")).status_code == 200
    assert c.get(kiln, f"/{NAMESPACE}/{PACKAGE}/1.0.0/kpm").status_code == 200
    assert c.delete(kiln, f"/{NAMESPACE}/{PACKAGE}/1.0.0/kpm").status_code == 200
    assert c.get(kiln, f"?namespace={NAMESPACE}").json_body == []
    refused = c.error(c.get(kiln, f"/{NAMESPACE}/{PACKAGE}"), 404)
    assert refused["message"] == f"package {NAME} doesn't exist, v: None, type: None"
    # still its tenant's: another tenant may not push to it
    beta = c.bearer(kiln, "beta")
    assert c.error(c.push(kiln, headers=beta), 403)["details"]["scopes"] == ["push"]
    assert c.push(kiln, release="3.0.0").status_code == 200
    listed = c.get(kiln, f"?namespace={NAMESPACE}").json_body
    assert [item["releases"] for item in listed] == [["3.0.0"]]


def test_only_writers_delete(kiln: Kiln) -> None:
    body = {"blob": c.b64(c.flat_blob()), "release": "1.0.0", "media_type": "helm"}
    assert c.push(kiln, body={**body, "visibility": "public"}).status_code == 200
    assert c.push(kiln, package="secret").status_code == 200
    beta = c.bearer(kiln, "beta")
    for package in (PACKAGE, "secret", "missing"):
        refused = c.error(c.delete(kiln, f"/{NAMESPACE}/{package}/1.0.0/helm", beta), 403)
        name = f"{NAMESPACE}/{package}"
        assert refused == {
            "code": "forbidden",
            "message": f"Unauthorized access for: {name}",
            "details": {"package": name, "scopes": ["pull", "push"]},
        }
        anonymous = c.error(c.delete(kiln, f"/{NAMESPACE}/{package}/1.0.0/helm", {}), 401)
        assert anonymous["code"] == "unauthorized-access"
    # a worker reads but does not delete; an admin deletes
    worker = c.bearer(kiln, "ops", "worker")
    assert c.error(c.delete(kiln, RELEASE.format("1.0.0"), worker), 403)["code"] == "forbidden"
    admin = c.bearer(kiln, "ops", "admin")
    assert c.delete(kiln, RELEASE.format("1.0.0"), admin).status_code == 200
    # the namespace's own tenant learns that a package does not exist
    missing = c.error(c.delete(kiln, f"/{NAMESPACE}/missing/1.0.0/helm"), 404)
    assert missing["message"] == f"package {NAMESPACE}/missing doesn't exist, v: 1.0.0, type: helm"


def test_a_delete_of_a_configured_namespace(kiln: Kiln) -> None:
    c.robots(kiln, {NAMESPACE: {"tenants": ["beta"]}})
    beta = c.bearer(kiln, "beta")
    assert c.push(kiln, headers=beta).status_code == 200
    assert c.error(c.delete(kiln, RELEASE.format("1.0.0")), 403)["code"] == "forbidden"
    robot = {"Authorization": c.login(kiln, "other-bot", "pw2").json_body["token"]}
    assert c.delete(kiln, RELEASE.format("1.0.0"), robot).status_code == 200


def test_unknown_methods_are_refused_in_the_registrys_format(kiln: Kiln) -> None:
    assert c.push(kiln).status_code == 200
    answer = kiln.client.http.put(
        f"{c.CNR}{RELEASE.format('1.0.0')}", headers=c.bearer(kiln), body=b""
    )
    refused = c.error(answer, 405)
    assert refused["code"] == "method-not-allowed"
