"""One job on a host. ``JobRun`` is what every job type shares (work dir, log and live log
chunks, progress, SSH sessions, publishing the image and its upload); ``CreateRun`` is the
create flow: fetch and check the recipe, wait for repos, build (with a debug shell on a failed
build when ``enable_debug``), publish. The customize flow is builders/customize.py."""

from __future__ import annotations

import contextlib
import hashlib
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from builders import build_cache, compare, uploads, workdir
from builders.backends import backend_for
from builders.backends.base import BUILD_LOG, Artifact, Backend, BuildContext, BuildError
from builders.host_config import HostConfig
from builders.live_log import LiveLog, NoLiveLog
from builders.report import PublishedArtifact, Reporter
from builders.ssh_session import SessionError, SshSession
from chalicelib.host_protocol import BuildOutput, Failure, FailureCode, JobMessage, Stage

CANCELLED = Failure(FailureCode.CANCELLED, "the job was deleted")
DEFAULT_USER_WAIT_SECONDS = 3600


class Stopped(Exception):
    """The host is shutting down, or the job's task token closed (``should_stop``): abandon
    the job and send no answer."""


class Cancelled(Exception):
    """The job's owner cancelled it (its cancel object exists): abandon it, answer so."""


class JobRun:
    def __init__(
        self,
        job: JobMessage,
        reporter: Reporter,
        s3: Any,
        config: HostConfig,
        should_stop: Callable[[], bool],
        is_cancelled: Callable[[], bool] = lambda: False,
        clients: uploads.ClientFactory | None = None,
    ) -> None:
        self.job = job
        self.job_id = job.job_id
        self._reporter, self._s3 = reporter, s3
        self.work_dir = config.work_dir / "jobs" / self.job_id
        self._arch = config.arch
        self._should_stop = should_stop
        self.cancelled = is_cancelled
        self.ssh = config.ssh
        self.timings: dict[str, float] = {}  # seconds per host stage (BuildOutput.timings)
        self.started_at = time.time()
        self.cache_lookup: build_cache.Lookup | None = None  # a cacheable job's plan digest
        self._log_lines: list[str] = []
        self._log_lock = threading.Lock()
        self._clients = clients or uploads.Clients(config.endpoint_url)
        prefix = job.log_chunk_prefix
        self._live: LiveLog | NoLiveLog = (
            LiveLog(s3, job.bucket, prefix, self._lines_from, config.log_chunk_seconds)
            if prefix
            else NoLiveLog()
        )

    def log(self, line: str) -> None:
        stamped = f"{time.strftime('%H:%M:%S')} {line.rstrip()}"
        with self._log_lock:
            self._log_lines.append(stamped)

    def _lines_from(self, start: int) -> list[str]:
        with self._log_lock:
            return self._log_lines[start:]

    def interrupted(self) -> bool:
        """The host is stopping, the job's task closed or the job was cancelled: what a
        backend sees as should_stop."""
        return self.cancelled() or self._should_stop()

    def check_interrupted(self) -> None:
        if self.cancelled():
            raise Cancelled()
        if self._should_stop():
            raise Stopped()

    @contextlib.contextmanager
    def stage(self, stage: Stage) -> Iterator[None]:
        """Count the time spent inside towards ``stage`` (stages may be entered repeatedly)."""
        began = time.monotonic()
        try:
            yield
        finally:
            spent = time.monotonic() - began
            self.timings[stage.value] = round(self.timings.get(stage.value, 0.0) + spent, 3)

    def output(self, **fields: Any) -> BuildOutput:
        """The SendTaskSuccess output, with what every job reports: node, timings, start."""
        return BuildOutput(
            node=self._reporter.xname,
            timings=dict(self.timings),
            started_at=self.started_at,
            **fields,
        )

    def execute(self) -> BuildOutput:
        """Make and publish the image (and upload it, if the job says where); returns the
        SendTaskSuccess output. Raises BuildError, Stopped or Cancelled."""
        started = time.monotonic()
        workdir.remove(self.work_dir)
        (self.work_dir / "out").mkdir(parents=True)
        self._live.start()
        try:
            upload = uploads.parse(self.job.upload)  # an impossible upload fails now
            artifacts = self.produce()
            self.check_interrupted()
            if self.job.compare_with is not None:  # a rebuild check publishes nothing
                with self.stage(Stage.PACKAGE):
                    comparison = compare.compare_with_original(
                        self.job, artifacts, self._s3, self.work_dir, self.log
                    )
                return self.output(
                    image_id=self.job.image_id,
                    log_key=self.upload_log(),
                    build_seconds=round(time.monotonic() - started, 3),
                    comparison=comparison,
                )
            with self.stage(Stage.PACKAGE):
                manifest, published = self._publish_image(artifacts)
            self.log(f"published {len(published)} artifacts and {manifest['key']}")
            upload_status = None
            if upload is not None:
                with self.stage(Stage.UPLOAD):
                    upload_status = self._upload(upload, artifacts, published)
            return self.output(
                image_id=self.job.image_id,
                artifacts=published,
                manifest=manifest,
                log_key=self.upload_log(),
                build_seconds=round(time.monotonic() - started, 3),
                upload_status=upload_status,
                cache=self.cache_lookup.facts() if self.cache_lookup else None,
            )
        finally:
            self._live.close()
            workdir.remove(self.work_dir)

    def _publish_image(self, artifacts: list[Artifact]) -> tuple[dict[str, Any], list[Any]]:
        """The artifacts (into the build cache's prefix when the job is cacheable) and the
        manifest; a cache hit lists the cached artifacts, which are in S3 already."""
        lookup = self.cache_lookup
        if lookup is not None and lookup.hit is not None:
            return self._reporter.publish_manifest(self.job, lookup.hit.listed, self.work_dir)
        prefix = lookup.prefix if lookup is not None else None
        return self._reporter.publish_image(self.job, artifacts, self.work_dir, prefix)

    def produce(self) -> list[Artifact]:
        """The job type's work: the artifacts to publish (files in ``work_dir/out``)."""
        raise NotImplementedError

    def _upload(
        self, spec: uploads.Spec, artifacts: list[Artifact], published: list[PublishedArtifact]
    ) -> dict[str, Any]:
        """The job's ``upload`` of the published disk; its success ``upload_status``."""
        running = spec.status("running")
        self.step("uploading", upload_status=running)
        by_name = {a.path.name: a.path for a in artifacts}  # published under any prefix
        disks = [
            uploads.Disk(
                item.key, item.type, by_name[item.key.rsplit("/", 1)[-1]], item.size, item.sha256
            )
            for item in published
            if item.type in uploads.DISK_TYPE_VALUES
        ]
        ctx = uploads.UploadContext(
            job_id=self.job_id,
            arch=self.job.arch or self._arch,
            bucket=self.job.bucket,
            disks=disks,
            clients=self._clients,
            log=self.log,
            progress=lambda status: self.step(status, upload_status=running),
            check_interrupted=self.check_interrupted,
        )
        status = uploads.run(spec, ctx)
        self.log(f"I: kiln: upload to {spec.type} done: {status['options']}")
        return status

    def upload_log(self) -> str:
        """The whole log to ``log_key`` (after the live log's last chunk)."""
        self._live.close()
        key = self.job.log_key
        path = self.work_dir.parent / f"{self.job_id}.log"
        with self._log_lock:
            path.write_text("\n".join(self._log_lines) + "\n", encoding="utf-8")
        try:
            self._reporter.upload(self.job.bucket, key, path, BUILD_LOG)
        finally:
            path.unlink(missing_ok=True)
        return key

    def step(
        self,
        status: str,
        ssh_containers: list[dict[str, Any]] | None = None,
        upload_status: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> None:
        """Report a step (``reason``: what it is doing, in words; a Cachito state_reason)."""
        self.check_interrupted()
        self.log(f"== {status}: {reason}" if reason else f"== {status}")
        self._reporter.progress(self.job_id, status, ssh_containers, upload_status, reason)

    # -- SSH sessions (customize, enable_debug) ------------------------------------------------
    def ssh_container(self, default_name: str) -> dict[str, Any]:
        """The job's SSH container: name and jail (IMS allows one)."""
        given = (self.job.ssh_containers or [{}])[0]
        return {"name": given.get("name") or default_name, "jail": bool(given.get("jail"))}

    @property
    def user_wait_seconds(self) -> int:
        return int(self.job.user_wait_seconds or DEFAULT_USER_WAIT_SECONDS)

    def hold_session(self, root: Path, default_name: str) -> tuple[str, dict[str, Any]]:
        """Serve ``root`` over SSH, report ``waiting_on_user``, and wait for the user's
        completion signal (removed from the root afterwards). Returns "complete" or "timeout"
        and the container as the next progress event should show it; raises Stopped or
        Cancelled if interrupted, SessionError if the session cannot open."""
        container = self.ssh_container(default_name)
        session = SshSession(self.ssh, self.job_id, self.log)
        try:
            info = session.start(root, container["jail"], self.job.public_key or "")
            container["connection_info"] = info
            self.step("waiting_on_user", [{**container, "status": "active"}])
            outcome = session.wait_for_completion(self.user_wait_seconds, self.interrupted)
        finally:
            session.close()
        with contextlib.suppress(OSError):
            session.completion_file.unlink(missing_ok=True)
        self.log(f"I: kiln: SSH session {container['name']} ended: {outcome}")
        if outcome == "stopped":
            self.check_interrupted()
            raise Stopped()
        return outcome, {**container, "status": "complete"}


class CreateRun(JobRun):
    def produce(self) -> list[Artifact]:
        backend = self._pick_backend()
        self.step("fetching_recipe")
        with self.stage(Stage.FETCH):
            recipe_dir = self._fetch_recipe()
        ctx = self._context(recipe_dir)
        self.step("waiting_for_repos")
        with self.stage(Stage.RESOLVE):
            backend.wait_for_repos(ctx)
            self.cache_lookup = build_cache.look_up(self.job, backend, ctx, self._s3)
        hit = self.cache_lookup.hit if self.cache_lookup else None
        if hit is not None:
            self.log(
                f"I: kiln: build cache hit {self.cache_lookup.key} (built by job "  # type: ignore[union-attr]
                f"{hit.source_job}): nothing to build"
            )
            with self.stage(Stage.FETCH):
                return build_cache.local_disks(
                    hit, self.job, self._s3, ctx.out_dir, self.upload_wanted
                )
        self.step("building_image")
        try:
            with self.stage(Stage.BUILD):
                return backend.build(ctx)
        except BuildError as exc:
            self._debug_shell(exc)
            raise

    @property
    def upload_wanted(self) -> bool:
        return self.job.upload is not None

    def _debug_shell(self, failure: BuildError) -> None:
        """enable_debug: keep a shell open on the failed build's root until the user is done."""
        root = failure.root
        if not self.job.enable_debug or root is None or not root.is_dir():
            return
        if self.interrupted():
            return
        self.log(f"E: {failure}")
        self.log("I: kiln: enable_debug: opening an SSH session on the failed build's root")
        try:
            outcome, _ = self.hold_session(root, "debug")
        except SessionError as exc:
            self.log(f"W: kiln: no debug session: {exc}")
            return
        if outcome == "timeout":
            self.log(f"W: kiln: no completion signal within {self.user_wait_seconds} s")

    def _pick_backend(self) -> Backend:
        recipe_type = self.job.recipe_type
        backend = backend_for(recipe_type)
        if backend is None:
            raise BuildError(
                f"host {self._reporter.xname} cannot build recipe type '{recipe_type}'"
            )
        reason = backend.unavailable_reason(self._arch)
        if reason:
            raise BuildError(f"host {self._reporter.xname} cannot build for {self._arch}: {reason}")
        return backend

    def _fetch_recipe(self) -> Path:
        recipe = self.job.recipe  # ObjectRef fields: bucket, key, sha256
        archive = self.work_dir / "recipe.tar.gz"
        self._s3.download_file(recipe["bucket"], recipe["key"], str(archive))
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        if recipe.get("sha256") and digest != recipe["sha256"]:
            raise BuildError(
                f"the recipe archive changed since it was checked (sha256 {digest}, expected "
                f"{recipe['sha256']}); upload it again"
            )
        target = self.work_dir / "recipe"
        target.mkdir()
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(target, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise BuildError(f"the recipe archive could not be unpacked: {exc}") from exc
        self.log(f"recipe {recipe['key']} sha256 {digest} unpacked")
        return target

    def _context(self, recipe_dir: Path) -> BuildContext:
        job = self.job
        return BuildContext(
            job_id=self.job_id,
            arch=self._arch,
            recipe_type=job.recipe_type,
            recipe_dir=recipe_dir,
            work_dir=self.work_dir / "work",
            out_dir=self.work_dir / "out",
            template=dict(job.template_dictionary or {}),
            source_date_epoch=int(job.source_date_epoch or 0),
            image_root_archive_name=job.image_root_archive_name,
            kernel_file_name=job.kernel_file_name or "vmlinuz",
            initrd_file_name=job.initrd_file_name or "initrd",
            log=self.log,
            should_stop=self.interrupted,
        )
