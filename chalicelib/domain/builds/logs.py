"""A job's build log: the whole log once the job ended, or, while it runs, the chunks its
host has appended so far (S3 has no append: see docs/build-hosts.md, "Live logs")."""

from __future__ import annotations

import dataclasses

from chalicelib.adapters.artifacts import ArtifactStore, job_log_chunk_prefix, job_log_key
from chalicelib.adapters.models import JobModel
from chalicelib.domain.states import JOB_TERMINAL


@dataclasses.dataclass(frozen=True)
class LogPart:
    text: str
    offset: int  # where ``text`` starts in the log
    size: int  # bytes of log known so far
    streaming: bool  # the job still runs: more is coming


def read(job: JobModel, store: ArtifactStore, offset: int = 0) -> LogPart:
    """The log from byte ``offset``; once the whole log exists, the chunks are not read."""
    key = job.build_log_key or job_log_key(job.id)  # the host writes it last, success or failure
    final = store.head(key)
    if final is not None:
        size = int(final["ContentLength"])
        data = store.read_from(key, offset) if offset < size else b""
        return LogPart(data.decode("utf-8", errors="replace"), offset, size, False)
    parts, start = [], 0
    for key, size in store.sizes(job_log_chunk_prefix(job.id)):
        if start + size > offset:
            parts.append(store.read_from(key, max(0, offset - start)))
        start += size
    text = b"".join(parts).decode("utf-8", errors="replace")
    return LogPart(text, offset, start, job.status not in JOB_TERMINAL)
