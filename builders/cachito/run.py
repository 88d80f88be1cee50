"""A Cachito request on a build host (job type ``cachito``): fetch the repository at the
commit, let each package manager fetch its dependencies through the shared dependency cache,
assemble the bundle, upload it with its package data.

Every step is a ``building_image`` progress event with a ``reason`` (``Fetching the
application source``, ``Fetching the <manager> dependencies``, ``Assembling the bundle
archive``, ``Uploading the bundle``): the service makes each an ``in_progress`` state reason,
so the request's ``updated`` moves. Outputs, under the job's ``artifact_prefix``:
``bundle.tar.gz`` (MediaType.SOURCE_BUNDLE, its sha256 also in the object's metadata) and
``packages.json`` (MediaType.PACKAGE_DATA: packages, environment variables, configuration
files). Nothing is uploaded before everything is fetched and assembled, and a run that fails
after its first upload deletes what it uploaded.

Failures: builders.cachito.errors (``<ErrorType>: <message>``, a client error as BuildFailed,
a server one as HostError); a refused or failed URL fetch a manager did not translate is a
ValidationError or NetworkError; anything else is Cachito's ``UnknownError: An unknown error
occurred`` (HostError), the details in the job's log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from builders import workdir
from builders.backends.base import BuildError
from builders.cachito import managers
from builders.cachito.bundle import build_bundle
from builders.cachito.context import FetchContext, Limits, ManagerResult
from builders.cachito.dep_cache import S3DependencyCache
from builders.cachito.errors import CachitoError, NetworkError, ValidationError
from builders.cachito.git_fetch import SUBMODULE_MANAGER
from builders.cachito.source import (
    SourceSpec,
    fetch_source,
    finish_tree,
    package_dir,
)
from builders.cachito.source_request import SourceRequest
from builders.host_config import HostConfig
from builders.job_run import Cancelled, JobRun, Stopped
from builders.report import Reporter, digests
from chalicelib.adapters.web_fetch import AllowList, FetchFailed, FetchRefused
from chalicelib.host_protocol import Artifact, BuildOutput, JobMessage, MediaType, Stage

STATUS = "building_image"
SOURCE_REASON = "Fetching the application source"
BUNDLE_REASON = "Assembling the bundle archive"
UPLOAD_REASON = "Uploading the bundle"
REUSE_REASON = "Reusing the bundle of an identical request from the cache"
BUNDLE_NAME = "bundle.tar.gz"
PACKAGES_NAME = "packages.json"
UNKNOWN_ERROR = "An unknown error occurred"
#: http.curloptResolve, which pins git to the checked addresses, is git 2.37's
MIN_GIT = (2, 37)
_host_log = logging.getLogger("kiln.cachito")


def unavailable_reason() -> str | None:
    """None when this host can run Cachito requests; else what is missing."""
    if shutil.which("git") is None:
        return "git is not installed (apt-get install git)"
    try:
        said = subprocess.run(
            ["git", "--version"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"git does not run: {exc}"
    found = re.search(r"(\d+)\.(\d+)", said)
    if found is None or (int(found[1]), int(found[2])) < MIN_GIT:
        return f"git {'.'.join(map(str, MIN_GIT))} or later is needed ({said.strip()})"
    return None


class UnknownError(CachitoError):
    """Anything unexpected: the request shows Cachito's UnknownError."""


def fetch_reason(manager: str) -> str:
    return f"Fetching the {manager} dependencies"


class CachitoRun(JobRun):
    def __init__(
        self,
        job: JobMessage,
        reporter: Reporter,
        s3: Any,
        config: HostConfig,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(job, reporter, s3, config, *args, **kwargs)
        self._still_every = config.cachito_progress_seconds
        self._reason = ""
        self._reason_since = time.monotonic()
        self._done = threading.Event()

    def step(
        self,
        status: str,
        ssh_containers: list[dict[str, Any]] | None = None,
        upload_status: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> None:
        super().step(status, ssh_containers, upload_status, reason)
        if reason:
            self._reason, self._reason_since = reason, time.monotonic()

    def _still_running(self) -> None:
        """While one step runs long, report it again every ``cachito_progress_seconds`` with
        how long it has taken: a new state reason, so the request's ``updated`` moves."""
        while not self._done.wait(self._still_every):
            if not self._reason:
                continue
            took = int(time.monotonic() - self._reason_since)
            spent = f"{took // 60} min" if took >= 60 else f"{took} s"
            reason = f"{self._reason} (still running after {spent})"
            try:
                self._reporter.progress(self.job_id, STATUS, reason=reason)
            except Exception as exc:  # a lost report is only a late one
                self.log(f"W: kiln: could not report progress: {exc}")

    def execute(self) -> BuildOutput:
        started = time.monotonic()
        workdir.remove(self.work_dir)
        self.work_dir.mkdir(parents=True)
        self._live.start()
        threading.Thread(target=self._still_running, name="still-running", daemon=True).start()
        uploaded: list[str] = []
        try:
            try:
                return self._run(started, uploaded)
            except (Stopped, Cancelled, BuildError):
                raise
            except FetchRefused as exc:
                raise ValidationError(str(exc)) from exc
            except FetchFailed as exc:
                raise NetworkError(str(exc)) from exc
            except Exception as exc:
                self.log(f"E: kiln: unexpected {type(exc).__name__}: {exc}")
                _host_log.error("Cachito request crashed", exc_info=exc)
                raise UnknownError(UNKNOWN_ERROR) from exc
        except BaseException:
            self._remove(uploaded)
            raise
        finally:
            self._done.set()
            self._live.close()
            workdir.remove(self.work_dir)

    def _run(self, started: float, uploaded: list[str]) -> BuildOutput:
        request = SourceRequest.parse(self.job.source_request)
        self.log(
            f"I: kiln: Cachito request {request.request_id}: {request.repo} at {request.ref}, "
            f"package managers {request.pkg_managers or 'none'}, flags {sorted(request.flags)}"
        )
        for name in request.pkg_managers:
            if not managers.known(name):
                raise ValidationError(f"The following package managers are not enabled: {name}")
        root = self.work_dir / "bundle"
        app_dir, deps_dir = root / "app", root / "deps"
        deps_dir.mkdir(parents=True)
        cache = S3DependencyCache(self._s3, self.job.bucket, request.cache_prefix, log=self.log)
        with self.stage(Stage.RESOLVE):
            reused = self._reuse(request, cache, started, uploaded)
        if reused is not None:
            return reused

        self.step(STATUS, reason=SOURCE_REASON)
        with self.stage(Stage.FETCH):
            source = self._fetch_source(request, app_dir, cache)
        for name in request.pkg_managers:
            for item in request.packages_for(name):
                package_dir(app_dir, name, item["path"])
        with self.stage(Stage.RESOLVE):
            results = self._fetch_dependencies(request, source, app_dir, deps_dir, cache)
        finish_tree(app_dir, source, request.flags)
        self.log(
            f"I: cache: {cache.hits} from the cache, {cache.fetched} fetched "
            f"({cache.fetched_bytes} bytes)"
        )
        document = managers.package_data(results, self.log)

        self.step(STATUS, reason=BUNDLE_REASON)
        out = self.work_dir / "out"
        out.mkdir()
        with self.stage(Stage.PACKAGE):
            bundle = build_bundle(
                root,
                out / BUNDLE_NAME,
                mtime=source.commit_time,
                max_bytes=request.limits.max_source_bytes + request.limits.max_bytes,
                log=self.log,
            )
        self.log(f"I: kiln: {BUNDLE_NAME}: {bundle.size} bytes, sha256 {bundle.sha256}")
        data = out / PACKAGES_NAME
        data.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")

        self.step(STATUS, reason=UPLOAD_REASON)
        with self.stage(Stage.UPLOAD):
            artifacts = [
                self._publish(bundle.path, MediaType.SOURCE_BUNDLE, "application/gzip", uploaded),
                self._publish(data, MediaType.PACKAGE_DATA, "application/json", uploaded),
            ]
        self.check_interrupted()
        self._remember(request, cache, artifacts)
        return self._output(artifacts, started)

    def _fetch_source(self, request: SourceRequest, app_dir: Path, cache: S3DependencyCache) -> Any:
        return fetch_source(
            SourceSpec(
                repo=request.repo,
                ref=request.ref,
                flags=request.flags,
                submodules=SUBMODULE_MANAGER in request.pkg_managers,
                allow=AllowList.parse(str(request.options.get("allow_cidrs") or "")),
                max_bytes=request.limits.max_source_bytes,
            ),
            app_dir,
            self.work_dir / "scratch" / "source",
            cache,
            self.log,
            self.check_interrupted,
        )

    def _fetch_dependencies(
        self,
        request: SourceRequest,
        source: Any,
        app_dir: Path,
        deps_dir: Path,
        cache: S3DependencyCache,
    ) -> list[ManagerResult]:
        results = []
        for name in request.pkg_managers:
            if name == SUBMODULE_MANAGER:
                results.append(ManagerResult(packages=source.packages))
                continue
            self.step(STATUS, reason=fetch_reason(name))
            ctx = self._context(request, name, app_dir, deps_dir, cache)
            results.append(managers.fetch(name, ctx, request.packages_for(name)))
            self._check_limits(request.limits, results, deps_dir)
        return results

    def _reuse(
        self, request: SourceRequest, cache: S3DependencyCache, started: float, uploaded: list[str]
    ) -> BuildOutput | None:
        """An earlier request with the same fingerprint left its outputs in the cache: they
        are this request's too (server-side copies), and nothing is fetched at all."""
        outputs = {BUNDLE_NAME: MediaType.SOURCE_BUNDLE, PACKAGES_NAME: MediaType.PACKAGE_DATA}
        fingerprint = request.fingerprint()
        found = cache.find_result(fingerprint, list(outputs))
        if found is None:
            return None
        self.step(STATUS, reason=REUSE_REASON)
        artifacts = []
        for name, media_type in outputs.items():
            key = f"{self.job.artifact_prefix}{name}"
            uploaded.append(key)
            cache.copy(cache.result_key(fingerprint, name), key)
            artifacts.append(Artifact(key, media_type, found[name]["size"], found[name]["sha256"]))
        self.log(
            f"I: cache: the bundle and package data of an identical earlier request "
            f"(fingerprint {fingerprint}) from the cache: no source or dependency fetched"
        )
        return self._output(artifacts, started)

    def _output(self, artifacts: list[Artifact], started: float) -> BuildOutput:
        """SendTaskSuccess's output: the outputs, then the whole log."""
        return self.output(
            image_id=self.job.image_id,
            artifacts=artifacts,
            log_key=self.upload_log(),
            build_seconds=round(time.monotonic() - started, 3),
        )

    def _remember(
        self, request: SourceRequest, cache: S3DependencyCache, artifacts: list[Artifact]
    ) -> None:
        """The outputs, for a later request with the same fingerprint (best effort)."""
        fingerprint = request.fingerprint()
        try:
            for artifact in artifacts:
                name = artifact.key.rsplit("/", 1)[-1]
                cache.copy(artifact.key, cache.result_key(fingerprint, name))
        except Exception as exc:  # the request succeeded; the next one fetches again
            self.log(f"W: kiln: could not keep the outputs in the cache: {exc}")

    def _context(
        self,
        request: SourceRequest,
        manager: str,
        app_dir: Path,
        deps_dir: Path,
        cache: S3DependencyCache,
    ) -> FetchContext:
        scratch = self.work_dir / "scratch" / manager
        scratch.mkdir(parents=True, exist_ok=True)
        return FetchContext(
            app_dir=app_dir,
            deps_dir=deps_dir,
            repo=request.repo,
            ref=request.ref,
            flags=request.flags,
            dependency_replacements=request.dependency_replacements,
            cache=cache,
            log=self.log,
            step=lambda reason: self.step(STATUS, reason=reason),
            check_interrupted=self.check_interrupted,
            limits=request.limits,
            options=dict(request.options),
            work_dir=scratch,
        )

    def _check_limits(self, limits: Limits, results: list[ManagerResult], deps_dir: Path) -> None:
        count = len(
            managers.dependency_identities([p for result in results for p in result.packages])
        )
        if count > limits.max_dependencies:
            raise ValidationError(
                f"The request has {count} dependencies, more than the "
                f"{limits.max_dependencies} a request may have"
            )
        size = sum(path.lstat().st_size for path in deps_dir.rglob("*") if path.is_file())
        if size > limits.max_bytes:
            raise ValidationError(
                f"The dependencies take {size} bytes, more than the {limits.max_bytes} bytes "
                "a request may fetch"
            )

    def _publish(
        self, path: Path, media_type: str, content_type: str, uploaded: list[str]
    ) -> Artifact:
        """``path`` under the job's ``artifact_prefix``, its sha256 in the object's metadata."""
        facts = digests(path)
        key = f"{self.job.artifact_prefix}{path.name}"
        uploaded.append(key)  # first: a failed upload may have left something behind
        self._s3.upload_file(
            str(path),
            self.job.bucket,
            key,
            ExtraArgs={"ContentType": content_type, "Metadata": {"sha256": facts["sha256"]}},
        )
        self.log(f"I: kiln: uploaded {key} ({facts['size']} bytes, sha256 {facts['sha256']})")
        return Artifact(key=key, type=media_type, size=facts["size"], sha256=facts["sha256"])

    def _remove(self, keys: list[str]) -> None:
        """A failed run leaves no half-written bundle: what it uploaded goes."""
        for key in keys:
            with contextlib.suppress(Exception):
                self._s3.delete_object(Bucket=self.job.bucket, Key=key)
                self.log(f"I: kiln: removed {key}: the request failed")
