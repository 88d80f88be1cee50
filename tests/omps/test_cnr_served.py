"""The app registry over real HTTP (Kiln's local front): operator-courier's own
``build_verify_and_push`` (what OMPS calls) pushing to Kiln instead of quay.io, with a Kiln
Bearer token and with a robot's ``basic`` token, read back the way a marketplace reader does
with a plain HTTP client; and concurrent pushes to one package: the same release exactly once
(the others 409), distinct releases all kept."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from operatorcourier import api as courier
from operatorcourier import push as courier_push
from operatorcourier.errors import OpCourierQuayErrorResponse

from tests.omps import cnr_helpers as c
from tests.omps import operators
from tests.omps.cnr_helpers import NAMESPACE, PACKAGE
from tests.served import Served, served_kiln

THREADS = 8


@pytest.fixture
def served(signing_keys: tuple[bytes, str]) -> Iterator[Served]:
    with served_kiln(signing_keys) as running:
        yield running


@pytest.fixture
def courier_to_kiln(served: Served, monkeypatch: pytest.MonkeyPatch) -> Served:
    """operator-courier posts to https://quay.io (hard-coded): send it to Kiln instead."""
    original = requests.post

    def post(url: str, *args: Any, **kwargs: Any) -> requests.Response:
        return original(url.replace("https://quay.io", served.url), *args, **kwargs)

    monkeypatch.setattr(courier_push.requests, "post", post)
    return served


def source(tmp_path: Path, files: dict[str, bytes | str]) -> str:
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return str(tmp_path)


def read(served: Served, path: str, token: str | None = None) -> requests.Response:
    """A GET as a plain HTTP client makes it (its own Accept: */*)."""
    headers = {"Authorization": token} if token else {}
    return requests.get(f"{served.url}{c.CNR}{path}", headers=headers, timeout=30)


def test_operator_courier_pushes_to_kiln(courier_to_kiln: Served, tmp_path: Path) -> None:
    served = courier_to_kiln
    token = f"Bearer {served.kiln.token('demo')}"
    flat = source(tmp_path / "flat", operators.flat_files())
    courier.build_verify_and_push(NAMESPACE, PACKAGE, "1.0.0", token, source_dir=flat)
    nested = source(tmp_path / "nested", operators.nested_files())
    courier.build_verify_and_push(NAMESPACE, PACKAGE, "2.0.0", token, source_dir=nested)
    with pytest.raises(OpCourierQuayErrorResponse) as duplicate:
        courier.build_verify_and_push(NAMESPACE, PACKAGE, "2.0.0", token, source_dir=nested)
    assert duplicate.value.code == 409
    assert str(duplicate.value) == f"{NAMESPACE}/{PACKAGE} - 2.0.0 - helm exists already "
    # the marketplace read path, over HTTP
    listed = read(served, f"?namespace={NAMESPACE}", token).json()
    assert [(item["name"], item["default"]) for item in listed] == [
        (f"{NAMESPACE}/{PACKAGE}", "2.0.0")
    ]
    trees = {}
    for release in ("1.0.0", "2.0.0"):
        manifest = read(served, f"/{NAMESPACE}/{PACKAGE}/{release}/helm", token).json()
        digest = manifest["content"]["digest"]
        blob = read(served, f"/{NAMESPACE}/{PACKAGE}/blobs/sha256/{digest}", token)
        assert blob.status_code == 200 and blob.headers["Content-Type"] == "application/x-gzip"
        assert hashlib.sha256(blob.content).hexdigest() == digest
        with tarfile.open(fileobj=io.BytesIO(blob.content), mode="r:gz") as tar:
            trees[release] = sorted(m.name.split("/", 1)[-1] for m in tar if m.isfile())
            assert {m.name.split("/", 1)[0] for m in tar} == {tar.getmembers()[0].name}
            assert tar.getmembers()[0].name.startswith(f"{PACKAGE}-")  # courier's top directory
    assert trees["1.0.0"] == ["bundle.yaml"]
    assert f"{PACKAGE}.package.yaml" in trees["2.0.0"]
    # and both as OLM bundles
    bundle = read(served, f"/{NAMESPACE}/{PACKAGE}/1.0.0/helm/olm-bundle", token)
    assert bundle.status_code == 200 and bundle.headers["Content-Type"] == "application/gzip"
    files = c.members(bundle.content)
    annotations = yaml.safe_load(files["metadata/annotations.yaml"])["annotations"]
    assert annotations["operators.operatorframework.io.bundle.package.v1"] == PACKAGE
    nested_bundle = read(served, f"/{NAMESPACE}/{PACKAGE}/2.0.0/helm/olm-bundle", token)
    assert "manifests/backup.crd.yaml" in c.members(nested_bundle.content)


def test_operator_courier_with_a_robot_token(courier_to_kiln: Served, tmp_path: Path) -> None:
    served = courier_to_kiln
    c.robots(served.kiln)
    login = requests.post(
        f"{served.url}/cnr/api/v1/users/login",
        json={"user": {"username": "bot", "password": "pw"}},
        timeout=30,
    )
    token = login.json()["token"]
    flat = source(tmp_path, operators.flat_files())
    courier.build_verify_and_push(NAMESPACE, PACKAGE, "1.0.0", token, source_dir=flat)
    assert read(served, f"/{NAMESPACE}/{PACKAGE}/1.0.0/helm", token).status_code == 200
    # the robot's tenant is demo: a demo user reads it, anonymous callers do not
    user = f"Bearer {served.kiln.token('demo')}"
    assert read(served, f"/{NAMESPACE}/{PACKAGE}/1.0.0/helm", user).status_code == 200
    assert read(served, f"/{NAMESPACE}/{PACKAGE}/1.0.0/helm").status_code == 403
    with pytest.raises(OpCourierQuayErrorResponse) as refused:
        courier.build_verify_and_push(
            NAMESPACE, PACKAGE, "2.0.0", "basic Ym90Om5v", source_dir=flat
        )
    assert refused.value.code == 401


def push_all(served: Served, releases: list[str]) -> list[requests.Response]:
    blob = c.b64(c.flat_blob())
    headers = {
        "Authorization": f"Bearer {served.kiln.token('demo')}",
        "Content-Type": "application/json",
    }

    def push(release: str) -> requests.Response:
        body = json.dumps({"blob": blob, "release": release, "media_type": "helm"})
        url = f"{served.url}{c.CNR}/{NAMESPACE}/{PACKAGE}"
        return requests.post(url, data=body, headers=headers, timeout=60)

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(push, releases))


def test_concurrent_pushes_of_one_release_store_it_once(served: Served) -> None:
    answers = push_all(served, ["1.0.0"] * THREADS)
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] + [409] * (THREADS - 1), [a.text for a in answers]
    for answer in answers:
        if answer.status_code == 409:
            assert answer.json()["error"]["code"] == "package-exists"
    token = f"Bearer {served.kiln.token('demo')}"
    listed = read(served, f"?namespace={NAMESPACE}", token).json()
    assert [item["releases"] for item in listed] == [["1.0.0"]]
    assert len(read(served, f"/{NAMESPACE}/{PACKAGE}", token).json()) == 1


def test_concurrent_pushes_of_distinct_releases_keep_all(served: Served) -> None:
    releases = [f"{major}.0.0" for major in range(1, THREADS + 1)]
    answers = push_all(served, releases)
    assert [answer.status_code for answer in answers] == [200] * THREADS, [a.text for a in answers]
    token = f"Bearer {served.kiln.token('demo')}"
    listed = read(served, f"?namespace={NAMESPACE}", token).json()
    assert listed[0]["releases"] == sorted(releases, key=lambda r: int(r.split(".")[0]))[::-1]
    assert listed[0]["default"] == f"{THREADS}.0.0"

    # concurrent deletes of them all: each once, and the package is emptied
    def delete(release: str) -> requests.Response:
        url = f"{served.url}{c.CNR}/{NAMESPACE}/{PACKAGE}/{release}/helm"
        return requests.delete(url, headers={"Authorization": token}, timeout=30)

    with ThreadPoolExecutor(THREADS) as pool:
        deleted = list(pool.map(delete, releases + releases[:2]))
    statuses = sorted(answer.status_code for answer in deleted)
    assert statuses == [200] * THREADS + [404] * 2, [a.text for a in deleted]
    assert read(served, f"?namespace={NAMESPACE}", token).json() == []
