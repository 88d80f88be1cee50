from __future__ import annotations

import pytest

from tests.conftest import Kiln, make_archive
from tests.ims.helpers import NOOP_RECIPE, V3, put_object, ready_recipe

PREFIXES = ["/apis/ims/v3", "/apis/ims", "/apis/ims/v2"]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_create_list_get_patch_under_every_prefix(kiln: Kiln, prefix: str) -> None:
    created = kiln.call("POST", f"{prefix}/recipes", NOOP_RECIPE)
    assert created.status_code == 201
    recipe = created.json_body
    assert recipe["name"] == "noop" and recipe["recipe_type"] == "kiln-noop"
    assert recipe["arch"] == "x86_64" and recipe["archive"]["status"] == "awaiting_upload"
    assert "link" not in recipe

    listed = kiln.call("GET", f"{prefix}/recipes").json_body
    assert [r["id"] for r in listed] == [recipe["id"]]
    assert kiln.call("GET", f"{prefix}/recipes/{recipe['id']}").json_body == recipe

    patched = kiln.call(
        "PATCH",
        f"{prefix}/recipes/{recipe['id']}",
        {"arch": "aarch64", "template_dictionary": [{"key": "A", "value": "1"}]},
    )
    assert patched.status_code == 200
    assert patched.json_body["arch"] == "aarch64"
    assert patched.json_body["template_dictionary"] == [{"key": "A", "value": "1"}]


def test_list_is_ordered_by_creation(kiln: Kiln) -> None:
    ids = [
        kiln.call("POST", f"{V3}/recipes", {**NOOP_RECIPE, "name": f"r{i}"}).json_body["id"]
        for i in range(3)
    ]
    assert [r["id"] for r in kiln.call("GET", f"{V3}/recipes").json_body] == ids


def test_post_with_link_checks_the_archive_and_records_checksum(kiln: Kiln) -> None:
    recipe = ready_recipe(kiln)
    assert recipe["archive"]["status"] == "ready"
    assert len(recipe["archive"]["sha256"]) == 64
    assert recipe["link"]["type"] == "s3" and recipe["link"]["etag"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"recipe_type": "kiln-noop", "linux_distribution": "debian12"}, "name"),
        ({"name": "x", "recipe_type": "docker", "linux_distribution": "debian12"}, "recipe_type"),
        (
            {"name": "x", "recipe_type": "kiwi-ng", "linux_distribution": "win95"},
            "linux_distribution",
        ),
        ({**NOOP_RECIPE, "arch": "sparc"}, "arch"),
        ({**NOOP_RECIPE, "require_dkms": "yes"}, "require_dkms"),
        ({**NOOP_RECIPE, "template_dictionary": {"a": "b"}}, "template_dictionary"),
        ({**NOOP_RECIPE, "colour": "blue"}, "colour"),
        ({**NOOP_RECIPE, "link": {"path": "http://x/y", "type": "s3"}}, "link"),
    ],
)
def test_invalid_recipe_is_422_problem_details(kiln: Kiln, body: dict, field: str) -> None:
    response = kiln.call("POST", f"{V3}/recipes", body)
    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json_body
    assert problem["status"] == 422 and problem["title"] == "Unprocessable Entity"
    assert field in problem["errors"]
    assert kiln.call("GET", f"{V3}/recipes").json_body == []


@pytest.mark.parametrize("body", [None, "", "{}", "[1", "not json"])
def test_missing_or_broken_body_is_400(kiln: Kiln, body: str | None) -> None:
    response = kiln.call("POST", f"{V3}/recipes", body)
    assert response.status_code == 400
    assert response.json_body["status"] == 400


def test_link_to_missing_object_is_422_and_nothing_is_written(kiln: Kiln) -> None:
    body = {
        **NOOP_RECIPE,
        "link": {"path": "s3://kiln-artifacts/uploads/demo/nope.tar.gz", "type": "s3"},
    }
    response = kiln.call("POST", f"{V3}/recipes", body)
    assert response.status_code == 422
    assert "does not exist" in response.json_body["detail"]
    assert kiln.call("GET", f"{V3}/recipes").json_body == []


def test_link_to_foreign_bucket_is_422(kiln: Kiln) -> None:
    body = {**NOOP_RECIPE, "link": {"path": "s3://someone-else/r.tar.gz", "type": "s3"}}
    assert kiln.call("POST", f"{V3}/recipes", body).status_code == 422


def test_link_to_unsafe_archive_is_422(kiln: Kiln) -> None:
    import tarfile

    evil = tarfile.TarInfo("../../etc/passwd")
    path = put_object(kiln, "uploads/demo/evil.tar.gz", make_archive({"recipe.yaml": "x"}, [evil]))
    response = kiln.call(
        "POST", f"{V3}/recipes", {**NOOP_RECIPE, "link": {"path": path, "type": "s3"}}
    )
    assert response.status_code == 422
    assert "climbs out" in response.json_body["detail"]


def test_unknown_recipe_is_404(kiln: Kiln) -> None:
    missing = "127ee397-1a4d-417f-8db5-3816609c6309"
    for method, body in (("GET", None), ("PATCH", {"arch": "x86_64"})):
        response = kiln.call(method, f"{V3}/recipes/{missing}", body)
        assert response.status_code == 404
        assert response.json_body["title"] == "Not Found"


def test_patch_rejects_read_only_and_bad_values(kiln: Kiln) -> None:
    recipe = kiln.call("POST", f"{V3}/recipes", NOOP_RECIPE).json_body
    for body in ({"name": "renamed"}, {"arch": "mips"}):
        response = kiln.call("PATCH", f"{V3}/recipes/{recipe['id']}", body)
        assert response.status_code == 422
    assert kiln.call("PATCH", f"{V3}/recipes/{recipe['id']}", None).status_code == 400
    assert kiln.call("GET", f"{V3}/recipes/{recipe['id']}").json_body["arch"] == "x86_64"
