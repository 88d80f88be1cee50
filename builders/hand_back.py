"""Rebuild checks meant for another host (docs/reproducibility.md): Kiln reserved another
node's slot for the check, but the build queue is per arch, so the node that built the
original may receive it; it hands it back a few times so the other host takes it."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.host_protocol import JobMessage

HAND_BACK_TIMES = 3  # receives of a check's message its avoided node hands back at most


def hands_back(job: JobMessage, xname: str, receive_count: int) -> bool:
    """Whether the host ``xname`` should hand a rebuild check back to the build queue rather
    than run it: Kiln reserved another node's slot for it (``compare_with.avoid_node`` is
    this host, the original's builder), so another host is free to take it. After a few
    receives the host takes it anyway (the other node may have gone)."""
    wanted = job.compare_with or {}
    return (
        bool(wanted.get("avoid_node"))
        and wanted.get("avoid_node") == xname
        and (receive_count <= HAND_BACK_TIMES)
    )


HAND_BACK_SECONDS = 5  # how long a handed-back check stays hidden from the host that handed it


def handed_back_for(message: dict[str, Any], xname: str) -> int | None:
    """The visibility timeout to hand a build-queue message back with (``hands_back``), or
    None to take it. ``message`` is SQS's, received with ``ApproximateReceiveCount``."""
    try:
        job = JobMessage.from_dict(json.loads(message["Body"]).get("job"))
        count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
    except (ValueError, TypeError, KeyError, AttributeError):  # ProtocolError is a ValueError
        return None  # take() answers what it cannot read
    return HAND_BACK_SECONDS if hands_back(job, xname, count) else None
