"""The Glance face's static documents: schemas that glanceclient's warlock models accept."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.faces.glance import documents
from tests import skip_policy

jsonschema = pytest.importorskip("jsonschema")

#: Glance's api-ref samples, in the published contracts (../shared/specs/ beside the repository)
SAMPLES = skip_policy.published_contract("glance-v2", "samples")

# An image as Glance's API shows it (modelled on the api-ref's image-show sample), with a
# custom property from schema-image.json and a free-form extra property.
IMAGE: dict[str, Any] = {
    "status": "active",
    "name": "cirros-0.6.2-x86_64-disk",
    "tags": [],
    "container_format": "bare",
    "created_at": "2024-05-05T17:15:10Z",
    "disk_format": "qcow2",
    "updated_at": "2024-05-05T17:15:11Z",
    "visibility": "public",
    "self": "/v2/images/1bea47ed-f6a9-463b-b423-14b9cca9ad27",
    "min_disk": 0,
    "protected": False,
    "id": "1bea47ed-f6a9-463b-b423-14b9cca9ad27",
    "file": "/v2/images/1bea47ed-f6a9-463b-b423-14b9cca9ad27/file",
    "checksum": "64d7c1cd2b6f60c92c14662941cb7913",
    "os_hash_algo": "sha512",
    "os_hash_value": "07" * 64,
    "os_hidden": False,
    "owner": "5ef70662f8b34079a6eddb8da9d75fe8",
    "size": 13167616,
    "min_ram": 0,
    "schema": "/v2/schemas/image",
    "virtual_size": None,
    "os_distro": "cirros",
    "hw_disk_bus": "virtio",
}

SCHEMAS = {
    "image": documents.image_schema,
    "images": documents.images_schema,
    "member": documents.member_schema,
    "members": documents.members_schema,
}


def validators() -> list[Any]:
    """Draft 4 (what the brief asks for) and the default one warlock's jsonschema.validate picks."""
    return [jsonschema.Draft4Validator, jsonschema.validators.validator_for({})]


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_schemas_are_valid_json_schemas_and_json_serialisable(name: str) -> None:
    schema = SCHEMAS[name]()
    assert schema["name"] == name
    for validator in validators():
        validator.check_schema(schema)
    assert json.loads(json.dumps(schema)) == schema


def test_sample_image_validates_and_bad_ones_do_not() -> None:
    schema = documents.image_schema()
    for validator in validators():
        validator(schema).validate(IMAGE)
        for bad in (
            {"status": "gone"},
            {"min_ram": None},
            {"hw_disk_bus": None},  # extra properties must be strings
            {"disk_format": "exe"},
            {"kernel_id": "not-a-uuid"},
            {"name": "x" * 256},
        ):
            assert not validator(schema).is_valid({**IMAGE, **bad}), bad
    images = {"images": [IMAGE], "first": "/v2/images", "schema": "/v2/schemas/images"}
    jsonschema.Draft4Validator(documents.images_schema()).validate(images)


@skip_policy.needs_published(SAMPLES)
def test_api_ref_image_samples_validate() -> None:
    validator = jsonschema.Draft4Validator(documents.image_schema())
    for name in ("image-show-response.json", "image-create-response.json"):
        validator.validate(json.loads((SAMPLES / name).read_text()))
    listing = json.loads((SAMPLES / "images-list-response.json").read_text())
    jsonschema.Draft4Validator(documents.images_schema()).validate(listing)
    member = json.loads((SAMPLES / "image-member-details-response.json").read_text())
    jsonschema.Draft4Validator(documents.member_schema()).validate(member)


def test_image_schema_shape_glanceclient_relies_on() -> None:
    schema = documents.image_schema()
    props = schema["properties"]
    assert schema["additionalProperties"] == {"type": "string"}
    assert [link["rel"] for link in schema["links"]] == ["self", "enclosure", "describedby"]
    assert props["disk_format"]["enum"] == [None, *documents.DISK_FORMATS]
    assert props["container_format"]["enum"] == [None, *documents.CONTAINER_FORMATS]
    assert props["status"]["enum"] == list(documents.IMAGE_STATUSES)
    assert props["visibility"]["enum"] == list(documents.VISIBILITIES)
    assert "compressed" in documents.CONTAINER_FORMATS
    assert props["name"]["type"] == ["null", "string"]
    # base properties carry no is_base; schema-image.json ones are marked is_base: false
    base = {key for key, prop in props.items() if prop.get("is_base", True)}
    assert base == documents.BASE_PROPERTIES
    assert {key for key in props if key not in base} >= {"kernel_id", "os_distro", "description"}
    for key in documents.READ_ONLY_PROPERTIES - {"id"}:
        assert props[key].get("readOnly") is True, key
    assert documents.IMAGE_ATTRIBUTES <= documents.BASE_PROPERTIES
    assert documents.images_schema()["properties"]["images"]["items"] == schema


def test_member_schemas() -> None:
    member = documents.member_schema()
    assert "additionalProperties" not in member
    assert member["properties"]["status"]["enum"] == ["pending", "accepted", "rejected"]
    assert documents.members_schema()["properties"]["members"]["items"] == member


def test_documents_are_fresh_copies() -> None:
    documents.image_schema()["properties"]["disk_format"]["enum"].append("exe")
    documents.member_schema()["properties"].clear()
    assert "exe" not in documents.image_schema()["properties"]["disk_format"]["enum"]
    assert "status" in documents.member_schema()["properties"]


def test_reserved_properties() -> None:
    assert documents.is_reserved_property("os_glance_import_task")
    assert documents.is_reserved_property("deleted_at")
    assert documents.is_reserved_property("locations", on_create=True)
    assert not documents.is_reserved_property("locations")
    assert not documents.is_reserved_property("os_distro")
    assert "id" not in documents.CREATE_READ_ONLY_PROPERTIES
    assert "id" in documents.READ_ONLY_PROPERTIES


def test_versions_document() -> None:
    versions = documents.versions_document("https://kiln.example/glance/")["versions"]
    current = [v for v in versions if v["status"] == "CURRENT"]
    assert [v["id"] for v in current] == ["v2.17"]
    assert current[0]["links"] == [{"rel": "self", "href": "https://kiln.example/glance/v2/"}]
    assert all(v["id"].startswith("v2.") for v in versions)
    assert {v["status"] for v in versions} == {"CURRENT", "SUPPORTED"}
    assert len(versions) == 11


def test_import_info_document() -> None:
    methods = ["glance-direct", "web-download"]
    body = documents.import_info_document(methods)
    assert body == {
        "import-methods": {
            "description": "Import methods available.",
            "type": "array",
            "value": ["glance-direct", "web-download"],
        }
    }
    assert body["import-methods"]["value"] is not methods
