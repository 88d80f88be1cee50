"""Recipe archive uploads: presigned PUT -> bucket notification -> SQS -> handler."""

from __future__ import annotations

import hashlib
import json
import tarfile

import boto3
import pytest

import app as app_module
from chalicelib.config import UPLOAD_EVENTS_QUEUE
from infra.local.event_sources import SqsPoller
from tests.conftest import Kiln, make_archive
from tests.ims.helpers import NOOP_RECIPE, V3, create_job, presigned_put, public_key


def deliver_uploads(kiln: Kiln) -> int:
    """Hand whatever the bucket notified to the upload handler, as the Lambda trigger does."""
    url = kiln.provisioned.queue_urls[UPLOAD_EVENTS_QUEUE]
    import threading

    poller = SqsPoller(
        url,
        "arn:aws:sqs:us-east-1:123456789012:" + UPLOAD_EVENTS_QUEUE,
        app_module.on_upload_event,
        10,
        threading.Event(),
        "us-east-1",
    )
    return poller.poll_once()


def upload(kiln: Kiln, recipe_id: str, archive: bytes) -> dict:
    grant = kiln.call("POST", f"{V3}/recipes/{recipe_id}/upload")
    assert grant.status_code == 200
    assert grant.json_body["method"] == "PUT"
    presigned_put(grant.json_body["upload_url"], archive)
    assert deliver_uploads(kiln) == 1
    return dict(kiln.call("GET", f"{V3}/recipes/{recipe_id}").json_body)


def new_recipe(kiln: Kiln) -> str:
    return str(kiln.call("POST", f"{V3}/recipes", NOOP_RECIPE).json_body["id"])


def test_upload_makes_the_recipe_usable(kiln: Kiln) -> None:
    recipe_id = new_recipe(kiln)
    archive = make_archive({"recipe.yaml": "a: 1\n"})
    recipe = upload(kiln, recipe_id, archive)
    assert recipe["archive"]["status"] == "ready"
    assert recipe["link"]["path"] == f"s3://kiln-artifacts/recipes/{recipe_id}/recipe.tar.gz"
    assert recipe["archive"]["sha256"] == hashlib.sha256(archive).hexdigest()
    assert recipe["archive"]["size"] == len(archive)
    kiln.register_host()
    key = public_key(kiln)
    job = create_job(kiln, recipe_id, key["id"])
    assert job.status_code == 201


def test_duplicate_events_change_nothing(kiln: Kiln) -> None:
    recipe_id = new_recipe(kiln)
    first = upload(kiln, recipe_id, make_archive({"recipe.yaml": "a: 1\n"}))
    s3 = boto3.client("s3", region_name="us-east-1")
    head = s3.head_object(Bucket="kiln-artifacts", Key=f"recipes/{recipe_id}/recipe.tar.gz")
    event = (
        '{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": '
        f'"kiln-artifacts"}}, "object": {{"key": "recipes/{recipe_id}/recipe.tar.gz", '
        f'"eTag": {head["ETag"]}}}}}}}]}}'
    )
    kiln.upload_events(event, event)
    assert kiln.call("GET", f"{V3}/recipes/{recipe_id}").json_body == first


def _link(name: str, target: str, symbolic: bool = True) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE if symbolic else tarfile.LNKTYPE
    info.linkname = target
    return info


def _device() -> tarfile.TarInfo:
    info = tarfile.TarInfo("dev/sda")
    info.type = tarfile.BLKTYPE
    return info


@pytest.mark.parametrize(
    ("archive", "reason"),
    [
        (make_archive({"recipe.yaml": "x", "/etc/shadow": "x"}), "absolute path"),
        (make_archive({"recipe.yaml": "x", "a/../../x": "x"}), "'..'"),
        (make_archive({"recipe.yaml": "x"}, [_link("l", "/etc/passwd")]), "absolute path"),
        (make_archive({"recipe.yaml": "x"}, [_link("a/l", "../../x")]), "outside the archive"),
        (
            make_archive({"recipe.yaml": "x"}, [_link("h", "../x", symbolic=False)]),
            "outside the archive",
        ),
        (make_archive({"recipe.yaml": "x"}, [_device()]), "device"),
        (make_archive({"readme": "x"}), "needs recipe.yaml"),
        (make_archive({f"f{i}": "x" for i in range(2001)}), "more than 2000 members"),
        (b"this is not gzip", "not a readable tar.gz"),
        (b"", "not a readable tar.gz"),
    ],
    ids=[
        "absolute",
        "dotdot",
        "abs-symlink",
        "escaping-symlink",
        "escaping-hardlink",
        "device",
        "no-entry-file",
        "too-many",
        "not-gzip",
        "empty",
    ],
)
def test_unsafe_archive_is_marked_invalid_and_jobs_refuse_it(
    kiln: Kiln, archive: bytes, reason: str
) -> None:
    recipe_id = new_recipe(kiln)
    recipe = upload(kiln, recipe_id, archive)
    assert recipe["archive"]["status"] == "invalid"
    assert reason in recipe["archive"]["reason"]
    assert "link" not in recipe
    kiln.register_host()
    key = public_key(kiln)
    job = create_job(kiln, recipe_id, key["id"])
    assert job.status_code == 422 and reason in job.json_body["detail"]


def test_oversized_archive_is_invalid(kiln: Kiln) -> None:
    kiln.configure(recipe_max_bytes=64)
    recipe_id = new_recipe(kiln)
    recipe = upload(kiln, recipe_id, make_archive({"recipe.yaml": "x" * 5000, "b": "y" * 999}))
    assert recipe["archive"]["status"] == "invalid"
    assert "larger than the limit" in recipe["archive"]["reason"]


def test_good_upload_after_a_bad_one_recovers(kiln: Kiln) -> None:
    recipe_id = new_recipe(kiln)
    assert upload(kiln, recipe_id, b"junk")["archive"]["status"] == "invalid"
    assert (
        upload(kiln, recipe_id, make_archive({"recipe.yaml": "ok"}))["archive"]["status"] == "ready"
    )


def test_events_for_other_keys_and_test_events_are_ignored(kiln: Kiln) -> None:
    recipe_id = new_recipe(kiln)
    kiln.upload_events(
        '{"Service": "Amazon S3", "Event": "s3:TestEvent"}',
        "not json",
        '{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": '
        '{"name": "kiln-artifacts"}, "object": {"key": "recipes/zzz/x.tgz"}}}]}',
    )
    assert (
        kiln.call("GET", f"{V3}/recipes/{recipe_id}").json_body["archive"]["status"]
        == "awaiting_upload"
    )


def s3_event(key: str, etag: str, sequencer: str) -> str:
    record = {
        "eventName": "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": "kiln-artifacts"},
            "object": {"key": key, "eTag": etag, "sequencer": sequencer},
        },
    }
    return json.dumps({"Records": [record]})


def put_archive(recipe_id: str, archive: bytes) -> str:
    s3 = boto3.client("s3", region_name="us-east-1")
    key = f"recipes/{recipe_id}/recipe.tar.gz"
    return str(s3.put_object(Bucket="kiln-artifacts", Key=key, Body=archive)["ETag"]).strip('"')


def test_an_older_event_replayed_after_a_newer_one_changes_nothing(kiln: Kiln) -> None:
    recipe_id = new_recipe(kiln)
    key = f"recipes/{recipe_id}/recipe.tar.gz"
    old, new = make_archive({"recipe.yaml": "a: 1\n"}), make_archive({"recipe.yaml": "b: 2\n"})
    old_etag, new_etag = put_archive(recipe_id, old), put_archive(recipe_id, new)
    kiln.upload_events(s3_event(key, new_etag, "0062E1C5F3A9B1C2D3"))
    after_new = kiln.call("GET", f"{V3}/recipes/{recipe_id}").json_body
    assert after_new["link"]["etag"] == new_etag
    assert after_new["archive"]["sha256"] == hashlib.sha256(new).hexdigest()
    # the older upload's event, late or replayed (sequencers compare right-padded)
    kiln.upload_events(s3_event(key, old_etag, "0062E1C5F3A9B1C2"))
    kiln.upload_events(s3_event(key, new_etag, "0062E1C5F3A9B1C2D3"))  # and a duplicate
    assert kiln.call("GET", f"{V3}/recipes/{recipe_id}").json_body == after_new


def test_an_event_whose_object_was_replaced_records_nothing_of_it(kiln: Kiln) -> None:
    """The first upload's event arrives after the second upload landed: what is recorded is
    always what was inspected (etag, sha256 and size of one object), and the newer event
    records it."""
    recipe_id = new_recipe(kiln)
    key = f"recipes/{recipe_id}/recipe.tar.gz"
    old, new = make_archive({"recipe.yaml": "a: 1\n"}), make_archive({"recipe.yaml": "b: 22\n"})
    old_etag, new_etag = put_archive(recipe_id, old), put_archive(recipe_id, new)
    kiln.upload_events(s3_event(key, old_etag, "0062E1C5F3A9B1C2"))
    recipe = kiln.call("GET", f"{V3}/recipes/{recipe_id}").json_body
    assert recipe["archive"]["status"] == "awaiting_upload" and "link" not in recipe
    kiln.upload_events(s3_event(key, new_etag, "0062E1C5F3A9B1C2D3"))
    recipe = kiln.call("GET", f"{V3}/recipes/{recipe_id}").json_body
    assert recipe["link"]["etag"] == new_etag
    assert recipe["archive"]["sha256"] == hashlib.sha256(new).hexdigest()
    assert recipe["archive"]["size"] == len(new)
