"""Everything a build host says to the outside: artifacts and logs to S3, progress and node
heartbeats to the build-events queue, and the job's answer to Step Functions; each message as
chalicelib/host_protocol.py types it."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from builders.backends.base import Artifact
from chalicelib.host_protocol import Artifact as PublishedArtifact
from chalicelib.host_protocol import (
    BuildOutput,
    Failure,
    JobMessage,
    MediaType,
    NodeHeartbeat,
    Progress,
)

#: one job at a time on a host
SLOTS = 1


def digests(path: Path) -> dict[str, Any]:
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    size = 0
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            sha256.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return {"sha256": sha256.hexdigest(), "md5": md5.hexdigest(), "size": size}


class Reporter:
    def __init__(self, sqs: Any, s3: Any, sfn: Any, events_queue_url: str, xname: str) -> None:
        self._sqs, self._s3, self._sfn = sqs, s3, sfn
        self._events = events_queue_url
        self.xname = xname

    # -- build-events queue -------------------------------------------------------------
    def event(self, message: Progress | NodeHeartbeat) -> None:
        body = dataclasses.asdict(message)
        if isinstance(message, Progress):  # ssh_containers, upload_status: only when set
            body = {key: value for key, value in body.items() if value is not None}
        self._sqs.send_message(QueueUrl=self._events, MessageBody=json.dumps(body))

    def progress(
        self,
        job_id: str,
        status: str,
        ssh_containers: list[dict[str, Any]] | None = None,
        upload_status: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> None:
        """A job's step; with an SSH session, its containers (name, jail, status,
        connection_info) as IMS shows them on the job; while uploading, the upload's status
        ({"type", "status": "running", "options": {}}); ``reason``: what the step is doing
        (a Cachito request's in_progress state_reason)."""
        self.event(
            Progress(
                job_id=job_id,
                status=status,
                node=self.xname,
                time=time.time(),
                ssh_containers=ssh_containers,
                upload_status=upload_status,
                reason=reason,
            )
        )

    def node_heartbeat(
        self,
        arch: str,
        recipe_types: list[str],
        current_job: str | None,
        now: float,
        job_types: list[str],
        accepting: bool,
    ) -> None:
        self.event(
            NodeHeartbeat(
                xname=self.xname,
                arch=arch,
                recipe_types=recipe_types,
                job_types=job_types,
                accepting=accepting,
                current_job=current_job,
                time=now,
                slots=SLOTS,
            )
        )

    # -- S3 ---------------------------------------------------------------------------------
    def upload(self, bucket: str, key: str, path: Path, content_type: str) -> dict[str, Any]:
        facts = digests(path)
        self._s3.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": content_type})
        etag = self._s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
        return {"link": {"path": f"s3://{bucket}/{key}", "etag": etag, "type": "s3"}, **facts}

    def publish_image(
        self,
        job: JobMessage,
        artifacts: list[Artifact],
        work_dir: Path,
        artifacts_prefix: str | None = None,
    ) -> tuple[dict[str, Any], list[PublishedArtifact]]:
        """Upload the artifacts (under ``artifacts_prefix``: the job's ``artifact_prefix``
        unless the build cache keeps them elsewhere) and an IMS-style manifest.json listing
        each of them under the job's ``artifact_prefix`` (the API side owns the key scheme).
        Returns the manifest (``{key, etag, sha256}``) and the published artifacts, as the
        build output lists them."""
        bucket = job.bucket
        prefix = job.artifact_prefix if artifacts_prefix is None else artifacts_prefix
        listed = []
        for artifact in artifacts:
            key = f"{prefix}{artifact.path.name}"
            uploaded = self.upload(bucket, key, artifact.path, "application/octet-stream")
            listed.append({"name": artifact.path.name, "type": artifact.type, **uploaded})
        return self.publish_manifest(job, listed, work_dir)

    def publish_manifest(
        self, job: JobMessage, listed: list[dict[str, Any]], work_dir: Path
    ) -> tuple[dict[str, Any], list[PublishedArtifact]]:
        """manifest.json under the job's ``artifact_prefix``, listing artifacts already in S3
        (``{name, type, link: {path, etag}, size, sha256, md5}`` each)."""
        manifest = {
            "version": "1.0",
            "created": datetime.datetime.now(datetime.UTC).isoformat(),
            "image_id": job.image_id,
            "job_id": job.job_id,
            "arch": job.arch,
            "artifacts": listed,
        }
        manifest_path = work_dir / "manifest.json"
        manifest_path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        manifest_key = f"{job.artifact_prefix}manifest.json"
        uploaded = self.upload(job.bucket, manifest_key, manifest_path, MediaType.MANIFEST_JSON)
        published = [
            PublishedArtifact(
                key=item["link"]["path"].split("/", 3)[3],
                type=item["type"],
                size=item["size"],
                sha256=item["sha256"],
            )
            for item in listed
        ]
        facts = {
            "key": manifest_key,
            "etag": uploaded["link"]["etag"],
            "sha256": uploaded["sha256"],
        }
        return facts, published

    # -- Step Functions -----------------------------------------------------------------------
    def heartbeat(self, token: str) -> None:
        self._sfn.send_task_heartbeat(taskToken=token)

    def succeed(self, token: str, output: BuildOutput) -> None:
        answered = dataclasses.replace(output, answered_at=time.time())
        self._sfn.send_task_success(taskToken=token, output=json.dumps(answered.to_dict()))

    def fail(self, token: str, failure: Failure) -> None:
        """``error`` is ``<Code>: <text>`` cut to 256 characters; ``cause`` the whole of it."""
        self._sfn.send_task_failure(
            taskToken=token, error=failure.to_error(), cause=spelled(failure)
        )


def spelled(failure: Failure) -> str:
    """``<Code>: <text>``, not cut: the answer's cause, and how the answer book keeps it
    (``Failure.from_error`` reads it back)."""
    return f"{failure.code.wire}: {failure.text}"
