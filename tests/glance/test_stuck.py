"""The schedule's Glance pass: an image whose data never arrived goes back to queued after its
time, and one staged for an import waits as long as it likes."""

from __future__ import annotations

import boto3

from tests.glance.conftest import Glance


def run_schedule(glance: Glance) -> dict:
    event = glance.kiln.client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
    )
    return dict(glance.kiln.client.lambda_.invoke("on_cleanup_schedule", event).payload)


def status(glance: Glance, image_id: str) -> dict:
    return dict(glance.show(image_id).json_body)


def test_an_abandoned_direct_upload_is_queued_again_and_its_upload_aborted(glance: Glance) -> None:
    image = glance.create(name="abandoned")
    grant = glance.call("POST", f"/v2/images/{image['id']}/direct-upload", {"parts": 1})
    assert grant.status_code == 201
    assert status(glance, image["id"])["status"] == "saving"
    assert run_schedule(glance)["glance_stuck_images"] == []  # not yet: its URLs still work

    glance.kiln.configure(presign_seconds=0, interrupted_grace_seconds=0)
    report = run_schedule(glance)
    assert report["glance_stuck_images"] == [f"{image['id']}: saving abandoned, queued again"]
    assert status(glance, image["id"])["status"] == "queued"
    s3 = boto3.client("s3", region_name="us-east-1")
    uploads = s3.list_multipart_uploads(Bucket=glance.kiln.provisioned.bucket)
    assert not uploads.get("Uploads")
    # and the image takes data again
    assert glance.upload(image["id"], b"now").status_code == 204


def test_an_import_no_worker_finished_fails_with_a_reason(glance: Glance) -> None:
    image = glance.create(name="stuck-import")
    staged = glance.call(
        "PUT",
        f"/v2/images/{image['id']}/stage",
        b"staged bytes",
        content_type="application/octet-stream",
    )
    assert staged.status_code == 204
    glance.kiln.configure(glance_upload_timeout_seconds=0)
    assert run_schedule(glance)["glance_stuck_images"] == []  # staged: it may wait
    started = glance.call(
        "POST", f"/v2/images/{image['id']}/import", {"method": {"name": "glance-direct"}}
    )
    assert started.status_code == 202
    glance.kiln.configure(glance_upload_timeout_seconds=0, glance_import_timeout_seconds=0)
    report = run_schedule(glance)  # the import message is never handled
    assert report["glance_stuck_images"] == [f"{image['id']}: import abandoned"]
    shown = status(glance, image["id"])
    assert shown["status"] == "queued" and shown["os_glance_failed_import"] == "s3"
    assert "did not finish" in shown["kiln_import_error"]
    assert glance.run_imports() == 1  # the late message finds no import of its own: no change
    assert status(glance, image["id"])["status"] == "queued"
