"""One build job on a host: fetch and check the recipe, wait for repos, build, publish."""

from __future__ import annotations

import hashlib
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from builders import workdir
from builders.backends import backend_for
from builders.backends.base import BuildContext, BuildError
from builders.report import Reporter


class Stopped(Exception):
    """The host is shutting down: abandon the job and send no answer."""


class JobRun:
    def __init__(
        self,
        job: dict[str, Any],
        reporter: Reporter,
        s3: Any,
        work_root: Path,
        arch: str,
        should_stop: Callable[[], bool],
    ) -> None:
        self.job = job
        self.job_id: str = job["job_id"]
        self._reporter, self._s3 = reporter, s3
        self.work_dir = work_root / "jobs" / self.job_id
        self._arch = arch
        self._should_stop = should_stop
        self._log_lines: list[str] = []
        self._log_lock = threading.Lock()

    def log(self, line: str) -> None:
        stamped = f"{time.strftime('%H:%M:%S')} {line.rstrip()}"
        with self._log_lock:
            self._log_lines.append(stamped)

    def execute(self) -> dict[str, Any]:
        """Build and publish; returns the SendTaskSuccess output. Raises BuildError or Stopped."""
        started = time.monotonic()
        workdir.remove(self.work_dir)
        (self.work_dir / "out").mkdir(parents=True)
        try:
            backend = self._pick_backend()
            self._step("fetching_recipe")
            recipe_dir = self._fetch_recipe()
            ctx = self._context(recipe_dir)
            self._step("waiting_for_repos")
            backend.wait_for_repos(ctx)
            self._step("building_image")
            artifacts = backend.build(ctx)
            if self._should_stop():
                raise Stopped()
            manifest = self._reporter.publish_image(self.job, artifacts, self.work_dir)
            self.log(f"published {len(manifest['artifacts'])} artifacts and {manifest['key']}")
            return {
                "image_id": self.job["image_id"],
                "artifacts": manifest.pop("artifacts"),
                "manifest": manifest,
                "log_key": self.upload_log(),
                "node": self._reporter.xname,
                "build_seconds": round(time.monotonic() - started, 3),
            }
        finally:
            workdir.remove(self.work_dir)

    def upload_log(self) -> str:
        key = self.job["log_key"]
        path = self.work_dir.parent / f"{self.job_id}.log"
        with self._log_lock:
            path.write_text("\n".join(self._log_lines) + "\n", encoding="utf-8")
        try:
            self._reporter.upload(self.job["bucket"], key, path, "text/plain")
        finally:
            path.unlink(missing_ok=True)
        return key

    def _step(self, status: str) -> None:
        if self._should_stop():
            raise Stopped()
        self.log(f"== {status}")
        self._reporter.progress(self.job_id, status)

    def _pick_backend(self) -> Any:
        recipe_type = self.job.get("recipe_type", "")
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
        recipe = self.job["recipe"]
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
            recipe_type=job["recipe_type"],
            recipe_dir=recipe_dir,
            work_dir=self.work_dir / "work",
            out_dir=self.work_dir / "out",
            template=dict(job.get("template_dictionary") or {}),
            source_date_epoch=int(job.get("source_date_epoch") or 0),
            image_root_archive_name=job["image_root_archive_name"],
            kernel_file_name=job.get("kernel_file_name") or "vmlinuz",
            initrd_file_name=job.get("initrd_file_name") or "initrd",
            log=self.log,
            should_stop=self._should_stop,
        )
