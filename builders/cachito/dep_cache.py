"""The dependency cache shared by every Cachito request, tenant and architecture:
content-addressed objects in S3.

- ``<prefix>deps/sha256/<hex>``: one fetched file, stored once, named by its sha256;
- ``<prefix>deps/index/<ecosystem>/<sha256 of identity>``: ``{"identity", "sha256", "size"}``,
  how a dependency known only by name and version (a requirement without a hash) finds it;
- ``<prefix>sources/<sha256 of repo URL>/<commit>.tar``: a repository fetched at a commit
  (builders/cachito/source.py);
- ``<prefix>results/<fingerprint>/``: the bundle and package data of a request, reused whole by
  a later request with the same fingerprint (repository, commit, managers, packages, flags,
  replacements, registries: builders/cachito/run.py).

A hit is copied onto itself (at most daily), so ``LastModified`` says when it was last used:
the cleanup schedule evicts by that age and by total size
(chalicelib/domain/cachito/cache_eviction.py).
Every hit is checked against its sha256 (and the caller's ``verify``); a corrupt object is
deleted and fetched again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.exceptions

CHUNK = 1024 * 1024
#: a hit marks its object used when it was last marked longer ago than this
TOUCH_AFTER_SECONDS = 86400
DEFAULT_PREFIX = "cachito-cache/"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _missing(exc: botocore.exceptions.ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


class S3DependencyCache:
    def __init__(
        self, s3: Any, bucket: str, prefix: str = DEFAULT_PREFIX, log: Callable[[str], None] = print
    ) -> None:
        self._s3, self._bucket, self._prefix, self._log = s3, bucket, prefix, log
        self.hits = 0
        self.fetched = 0
        self.fetched_bytes = 0
        self._counting = threading.Lock()  # fetch may run on several threads at once

    # -- keys -------------------------------------------------------------------------------
    def blob_key(self, sha256: str) -> str:
        return f"{self._prefix}deps/sha256/{sha256}"

    def index_key(self, ecosystem: str, identity: str) -> str:
        named = hashlib.sha256(identity.encode("utf-8")).hexdigest()
        return f"{self._prefix}deps/index/{ecosystem}/{named}"

    def source_key(self, repo_url: str, commit: str) -> str:
        named = hashlib.sha256(repo_url.encode("utf-8")).hexdigest()
        return f"{self._prefix}sources/{named}/{commit}.tar"

    # -- dependencies -----------------------------------------------------------------------
    def fetch(
        self,
        ecosystem: str,
        identity: str,
        target: Path,
        download: Callable[[Path], None],
        sha256: str | None = None,
        verify: Callable[[Path], None] | None = None,
    ) -> str:
        target.parent.mkdir(parents=True, exist_ok=True)
        known = sha256 or self._indexed(ecosystem, identity)
        if known and self._get_checked(self.blob_key(known), target, known, verify, identity):
            with self._counting:
                self.hits += 1
            self._log(f"I: cache: {identity} from the dependency cache")
            return known
        download(target)
        digest = file_sha256(target)
        if sha256 and digest != sha256:
            from builders.cachito.errors import InvalidChecksum

            raise InvalidChecksum(
                f"The checksum of {identity} is {digest}, not the expected {sha256}"
            )
        with self._counting:
            self.fetched += 1
            self.fetched_bytes += target.stat().st_size
        self._put(self.blob_key(digest), target, ecosystem, identity)
        self._put_index(ecosystem, identity, digest, target.stat().st_size)
        self._log(f"I: cache: {identity} fetched from its registry and cached")
        return digest

    def _indexed(self, ecosystem: str, identity: str) -> str | None:
        try:
            body = self._s3.get_object(Bucket=self._bucket, Key=self.index_key(ecosystem, identity))
        except botocore.exceptions.ClientError as exc:
            if _missing(exc):
                return None
            raise
        try:
            entry = json.loads(body["Body"].read())
            return str(entry["sha256"]) if entry.get("identity") == identity else None
        except (ValueError, KeyError, TypeError):
            return None

    def _put_index(self, ecosystem: str, identity: str, sha256: str, size: int) -> None:
        body = json.dumps({"identity": identity, "sha256": sha256, "size": size})
        self._s3.put_object(
            Bucket=self._bucket,
            Key=self.index_key(ecosystem, identity),
            Body=body.encode("utf-8"),
            ContentType="application/json",
        )

    # -- whole objects (dependencies and sources) --------------------------------------------
    def _get_checked(
        self,
        key: str,
        target: Path,
        sha256: str,
        verify: Callable[[Path], None] | None,
        what: str,
    ) -> bool:
        """Download ``key`` to ``target`` if it exists and is intact (and mark it used); a
        corrupt object is deleted. False: not cached (or no longer)."""
        try:
            body = self._s3.get_object(Bucket=self._bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if _missing(exc):
                return False
            raise
        digest = hashlib.sha256()
        with target.open("wb") as f:
            for chunk in body["Body"].iter_chunks(CHUNK):
                digest.update(chunk)
                f.write(chunk)
        problem = None
        if digest.hexdigest() != sha256:
            problem = "its sha256 does not match"
        elif verify is not None:
            try:
                verify(target)
            except Exception as exc:  # the caller's integrity check refused it
                problem = str(exc)
        if problem:
            self._log(f"W: cache: dropping the corrupt cached copy of {what}: {problem}")
            with contextlib.suppress(botocore.exceptions.ClientError):
                self._s3.delete_object(Bucket=self._bucket, Key=key)
            target.unlink(missing_ok=True)
            return False
        modified = body.get("LastModified")
        if modified is None or time.time() - modified.timestamp() > TOUCH_AFTER_SECONDS:
            self._touch(key, dict(body.get("Metadata") or {}))
        return True

    def _touch(self, key: str, kept: dict[str, str]) -> None:
        """Copy the object onto itself (its metadata kept): its LastModified is now its last
        use. Done at most once a day per object, which is fine enough for eviction by age."""
        with contextlib.suppress(botocore.exceptions.ClientError):
            self._s3.copy_object(  # REPLACE: S3 refuses a copy onto itself that changes nothing
                Bucket=self._bucket,
                Key=key,
                CopySource={"Bucket": self._bucket, "Key": key},
                MetadataDirective="REPLACE",
                Metadata={**kept, "kiln-used": str(int(time.time()))},
            )

    def _put(self, key: str, path: Path, ecosystem: str, identity: str) -> None:
        self._s3.upload_file(
            str(path),
            self._bucket,
            key,
            ExtraArgs={"Metadata": {"ecosystem": ecosystem, "identity": identity[:1024]}},
        )

    def get_source(self, repo_url: str, commit: str, target: Path) -> bool:
        """A repository archived at a commit, if cached and intact (its sha256 is metadata)."""
        key = self.source_key(repo_url, commit)
        try:
            head = self._s3.head_object(Bucket=self._bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if _missing(exc):
                return False
            raise
        sha256 = head.get("Metadata", {}).get("sha256", "")
        if not sha256:
            return False
        if not self._get_checked(key, target, sha256, None, f"{repo_url}@{commit}"):
            return False
        with self._counting:
            self.hits += 1
        self._log(f"I: cache: {repo_url} at {commit} from the source cache")
        return True

    # -- whole results ------------------------------------------------------------------------
    def result_key(self, fingerprint: str, name: str) -> str:
        return f"{self._prefix}results/{fingerprint}/{name}"

    def find_result(self, fingerprint: str, names: list[str]) -> dict[str, dict[str, Any]] | None:
        """The cached outputs (``name`` -> size, sha256) of an earlier request with the same
        fingerprint, if all of them are there with their sha256 recorded."""
        found: dict[str, dict[str, Any]] = {}
        for name in names:
            try:
                head = self._s3.head_object(
                    Bucket=self._bucket, Key=self.result_key(fingerprint, name)
                )
            except botocore.exceptions.ClientError as exc:
                if _missing(exc):
                    return None
                raise
            sha256 = head.get("Metadata", {}).get("sha256")
            if not sha256:
                return None
            found[name] = {"size": int(head["ContentLength"]), "sha256": sha256}
        return found

    def copy(self, source: str, target: str) -> None:
        """A server-side copy, metadata and content type kept."""
        self._s3.copy_object(
            Bucket=self._bucket,
            Key=target,
            CopySource={"Bucket": self._bucket, "Key": source},
            MetadataDirective="COPY",
        )

    def put_source(self, repo_url: str, commit: str, archive: Path) -> None:
        self._s3.upload_file(
            str(archive),
            self._bucket,
            self.source_key(repo_url, commit),
            ExtraArgs={"Metadata": {"sha256": file_sha256(archive)}},
        )
