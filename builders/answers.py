"""What a host answers for a job, kept on disk so a redelivered job gets the same answer; and
how a host tells that a job's task token is closed (no answer is wanted any more)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from builders.report import spelled
from chalicelib.host_protocol import BuildOutput, Failure

# What SendTaskHeartbeat answers for a token whose task is over: TaskTimedOut (a missed
# heartbeat, the job timeout, a stopped or ended execution), TaskDoesNotExist, InvalidToken (a
# token Step Functions does not know; moto's answer once the execution is no longer running).
# Any other error (network, throttling, 5xx) says nothing about the task: beat again.
TOKEN_CLOSED_CODES = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})


def token_closed_code(exc: Exception) -> str | None:
    """The error code if ``exc`` (a botocore ClientError) says the task token is closed."""
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    code = str(error.get("Code", "")) if isinstance(error, dict) else ""
    return code if code in TOKEN_CLOSED_CODES else None


class TokenClosed(threading.Event):
    """Set by the heartbeat thread once Step Functions says the job's task token is closed:
    the job is stopped and gets no answer. ``reason`` is the refusal, for the logs."""

    reason = ""


#: a job's answer: SendTaskSuccess's output or SendTaskFailure's failure
Answer = BuildOutput | Failure


class AnswerBook:
    """What this host answered for each job, on disk, so a redelivery gets the same answer:
    ``{"outcome": "success", "output": <BuildOutput>}`` or ``{"outcome": "failure", "error":
    "<Code>: <text>"}`` (the whole text, not cut)."""

    def __init__(self, root: Path) -> None:
        self._root = root / "answers"
        self._root.mkdir(parents=True, exist_ok=True)

    def get(self, job_id: str) -> Answer | None:
        path = self._root / f"{job_id}.json"
        if not path.exists():
            return None
        kept = json.loads(path.read_text())
        if kept["outcome"] == "success":
            return BuildOutput.from_dict(kept["output"])
        return Failure.from_error(kept["error"])

    def put(self, job_id: str, answer: Answer) -> None:
        kept: dict[str, Any] = (
            {"outcome": "success", "output": answer.to_dict()}
            if isinstance(answer, BuildOutput)
            else {"outcome": "failure", "error": spelled(answer)}
        )
        path = self._root / f"{job_id}.json"
        path.with_suffix(".tmp").write_text(json.dumps(kept))
        path.with_suffix(".tmp").replace(path)
