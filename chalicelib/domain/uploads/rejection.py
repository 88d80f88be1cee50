"""The one exception for an upload Kiln refuses, and its kinds.

Raised by the shared upload checks (hashing.py, archive_safety.py and the archive readers);
each face turns it into its own error: IMS recipes into 422 or archive status ``invalid``,
Glance into 400 or 413, and the coming OMPS face into its own. ``str(exc)`` is the reason.
"""

from __future__ import annotations


class UploadRejected(Exception):
    """An upload that is unsafe, unusable or over a limit; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TooLarge(UploadRejected):
    """More bytes than ``limit``: ``size`` seen so far, or declared up front (``declared``)."""

    def __init__(self, limit: int, size: int, declared: bool = False) -> None:
        what = "declares" if declared else "has"
        super().__init__(f"the upload {what} {size} bytes, over the limit of {limit} bytes")
        self.limit = limit
        self.size = size
        self.declared = declared


class BodyCutShort(UploadRejected):
    """The body ended after ``received`` of the ``declared`` bytes its sender announced."""

    def __init__(self, received: int, declared: int) -> None:
        super().__init__(f"the body ended after {received} of {declared} bytes")
        self.received = received
        self.declared = declared
