"""A Koji compose's import on a build host (job type ``koji-import``), composer's koji-finalize:
each file of the compose (its images, their build plans as manifests, their build logs) comes
from the artifact bucket, is checked against the SHA-256 Kiln recorded, goes up to the hub's
work directory, and gets its size and MD5 in the content-generator metadata; then ``CGImport``
makes them the build the compose reserved. The hub checks sizes and checksums again.

The hub and how to log in to it come from the host's ``KILN_KOJI_HUBS`` (the service's own
setting, chalicelib/adapters/koji_cg.py); a hub the host has no entry for fails the job."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

from builders import workdir
from builders.backends.base import BuildError
from builders.host_config import HostConfig
from builders.job_run import JobRun
from builders.report import Reporter, digests
from chalicelib.adapters.koji_cg import ContentGenerator, KojiCGError, parse_hubs
from chalicelib.host_protocol import BuildOutput, FailureCode, JobMessage, Stage

KOJI_FAILED = FailureCode.KOJI_IMPORT_FAILED


class KojiImportRun(JobRun):
    def __init__(
        self, job: JobMessage, reporter: Reporter, s3: Any, config: HostConfig, *a: Any, **kw: Any
    ) -> None:
        super().__init__(job, reporter, s3, config, *a, **kw)
        self._koji_hubs = config.koji_hubs

    def execute(self) -> BuildOutput:
        started = time.monotonic()
        workdir.remove(self.work_dir)
        self.work_dir.mkdir(parents=True)
        try:
            with self.stage(Stage.UPLOAD):
                self._import()
            return self.output(
                image_id=self.job.image_id,
                log_key=self.upload_log(),
                build_seconds=round(time.monotonic() - started, 3),
            )
        finally:
            workdir.remove(self.work_dir)

    def _import(self) -> int:
        spec = self.job.koji_import or {}
        server = str(spec.get("server", ""))
        access = parse_hubs(self._koji_hubs).get(server.rstrip("/"))
        if access is None:
            raise BuildError(
                f"this build host has no login for Koji hub {server}", code=KOJI_FAILED
            )
        metadata = copy.deepcopy(spec["metadata"])
        outputs = {item["filename"]: item for item in metadata["output"]}
        directory = str(spec["directory"])
        hub = ContentGenerator(access)
        try:
            self.step("uploading", reason=f"uploading to {server}")
            for item in spec["files"]:
                self.check_interrupted()
                path, facts = self._fetch(spec.get("bucket") or self.job.bucket, item)
                size = facts["size"]
                self.log(f"I: koji: uploading {item['filename']} ({size} bytes) to {directory}")
                hub.upload(path, directory, item["filename"])
                # MD5: Koji's checksum for content-generator outputs
                outputs[item["filename"]].update(
                    filesize=size, checksum=facts["md5"], checksum_type="md5"
                )
                path.unlink()
            self.step("registering", reason=f"importing build {spec['build_id']}")
            build_id = hub.import_build(metadata, directory, str(spec["token"]))
        except KojiCGError as exc:
            raise BuildError(f"Koji import failed: {exc}", code=KOJI_FAILED) from exc
        finally:
            hub.close()
        self.log(f"I: koji: imported build {build_id} ({len(spec['files'])} files)")
        return build_id

    def _fetch(self, bucket: str, item: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
        """The object and its digests, checked against the SHA-256 Kiln recorded for it (when
        it has one)."""
        path = self.work_dir / item["filename"]
        try:
            self._s3.download_file(bucket, item["key"], str(path))
        except Exception as exc:
            raise BuildError(f"could not read {item['key']}: {exc}", code=KOJI_FAILED) from exc
        facts = digests(path)
        wanted = item.get("sha256")
        if wanted and facts["sha256"] != wanted:
            raise BuildError(
                f"{item['key']} does not match its recorded SHA-256; not imported",
                code=KOJI_FAILED,
            )
        return path, facts
