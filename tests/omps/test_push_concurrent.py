"""Concurrent OMPS pushes without a version, over HTTP on Kiln's own front (many request
threads): each gets its own version (§15.4: upstream's list, max, bump, push is not atomic,
and the second of two concurrent pushes got a 500)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.omps import operators as ops
from tests.served import Served, served_kiln

ORG = "acme"
PUSHES = 8


@pytest.fixture
def served(signing_keys: tuple[bytes, str]) -> Iterator[Served]:
    with served_kiln(signing_keys) as running:
        yield running


def test_concurrent_pushes_to_one_package_get_distinct_versions(served: Served) -> None:
    token = served.kiln.token()
    first = push(served, token)  # the tenant claims the organization first
    assert first.status_code == 200, first.text
    with ThreadPoolExecutor(max_workers=PUSHES) as pool:
        responses = list(pool.map(lambda _: push(served, token), range(PUSHES - 1)))
    assert [r.status_code for r in responses] == [200] * (PUSHES - 1), [r.text for r in responses]
    versions = [first.json()["version"]] + [r.json()["version"] for r in responses]
    expected = [f"{major}.0.0" for major in range(1, PUSHES + 1)]
    assert sorted(versions, key=lambda v: int(v.split(".")[0])) == expected
    assert sorted(ops.release_names(ORG, ops.PACKAGE)) == sorted(expected)


def test_concurrent_first_pushes_to_a_new_organization_all_succeed(served: Served) -> None:
    token = served.kiln.token()
    with ThreadPoolExecutor(max_workers=PUSHES) as pool:
        responses = list(pool.map(lambda _: push(served, token), range(PUSHES)))
    assert [r.status_code for r in responses] == [200] * PUSHES, [r.text for r in responses]
    versions = sorted(int(r.json()["version"].split(".")[0]) for r in responses)
    assert versions == list(range(1, PUSHES + 1))


def push(served: Served, token: str) -> requests.Response:
    body, content_type = ops.multipart(ops.flat_operator())
    return requests.post(
        f"{served.url}/omps/v2/{ORG}/zipfile",
        data=body,
        headers=ops.upload_headers(token, content_type),
        timeout=120,
    )
