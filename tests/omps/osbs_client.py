"""OMPS as OSBS (atomic-reactor's push_operator_manifests) calls it (omps-behaviour.md §13):
``POST {omps_url}/v2/{organization}/zipfile`` with no version, multipart field ``file`` named
``operator_manifests.zip``, the token as the Authorization header verbatim, through a session
that retries POST on 408/429/500/502/503/504 (10 times; upstream's backoff factor is 5, a
parameter here so tests do not sleep minutes). Success is 200 only; any other status raises
with upstream's message. Used by the end-to-end test and bench/omps.py."""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

RETRY_STATUSES = (408, 429, 500, 502, 503, 504)
ARCHIVE_NAME = "operator_manifests.zip"


class OMPSError(Exception):
    """The push failed; the message is atomic-reactor's."""


class OMPS:
    def __init__(self, url: str, token: str, backoff: float = 5, retries: int = 10) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.session = requests.Session()
        retry = Retry(
            total=retries,
            backoff_factor=backoff,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=False,  # every method, POST included
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def push_archive(self, organization: str, archive: bytes) -> dict[str, Any]:
        """The 200 body: ``organization``, ``repo``, ``version``, ``extracted_files``."""
        response = self.session.post(
            f"{self.url}/v2/{organization}/zipfile",
            files={"file": (ARCHIVE_NAME, archive)},
            headers={"Authorization": self.token},
            timeout=120,
        )
        if response.status_code != 200:
            try:
                body = response.json()
            except ValueError:
                body = {}
            raise OMPSError(
                "OMPS service request failed with error: "
                f"{body.get('error', 'unknown')}: {body.get('message')} "
                f"(validation errors: {body.get('validation_info')})"
            )
        return dict(response.json())
