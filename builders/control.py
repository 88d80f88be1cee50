"""The control objects the API side writes in the artifact bucket and a build host reads:

- ``control/build-nodes/<xname>.json`` ``{"registered": true|false}``: the host takes work only
  while registered (missing or false: it drains, finishing what it runs);
- a job's ``cancel_key``: once that object exists, the job was cancelled by its owner.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger

_MISSING = ("404", "NoSuchKey", "NotFound", "Not Found")


def registration_key(xname: str) -> str:
    return f"control/build-nodes/{xname}.json"


def _missing(exc: Exception) -> bool:
    error = getattr(exc, "response", {}).get("Error", {})
    return str(error.get("Code", "")) in _MISSING


class Control:
    def __init__(self, s3: Any, bucket: str, xname: str, logger: Logger) -> None:
        self._s3, self._bucket, self._xname = s3, bucket, xname
        self._log = logger

    def registered(self) -> bool:
        """Whether this host may take work now (one GET: read before every receive, so a
        drained host takes nothing more)."""
        key = registration_key(self._xname)
        try:
            body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except Exception as exc:
            if not _missing(exc):
                self._log.warning("registration unreadable", extra={"reason": str(exc)})
            return False
        try:
            data = json.loads(body)
        except ValueError:
            self._log.warning("registration is not JSON", extra={"key": key})
            return False
        return isinstance(data, dict) and data.get("registered") is True

    def cancelled(self, bucket: str, key: str | None) -> bool:
        """Whether the job's cancel object exists (a failed read counts as not cancelled)."""
        if not key:
            return False
        try:
            self._s3.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if not _missing(exc):
                self._log.warning("cancel check failed", extra={"reason": str(exc)})
            return False
        return True
