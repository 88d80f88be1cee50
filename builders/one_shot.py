"""One-shot mode of the build-host agent: one job, then exit (an AWS Batch job's container;
docs/batch.md). ``python -m builders.agent --one-shot`` reads one build-queue message body,
``{"job": <JobMessage>, "token": <task token>}`` exactly as the state machine sent it, from
``KILN_JOB_MESSAGE`` (or ``--message-file PATH``) and:

- announces itself as a node (xname ``KILN_HOST_XNAME``, default ``batch-<AWS_BATCH_JOB_ID or
  hostname>``) with the hosts' node heartbeats while it runs; nobody registers that node, so
  the service never dispatches to it: the feeder's node (``batch-<arch>``) stands for the
  compute environment;
- heartbeats the task token first: a cold start may come long after the message was sent, or be
  a second Batch job for the same message. A token Step Functions says is closed
  (``answers.token_closed_code``) means the task is over: nothing is built, nothing answered;
- otherwise takes the message as the polling loop takes each one (``Agent.take``: the same
  heartbeats, cancel checks, answer book and answer);
- exits 0 whatever the job's outcome (the answer went to Step Functions); 2 only if there was no
  message to read.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from builders.agent import Agent

MESSAGE_ENV = "KILN_JOB_MESSAGE"


def message(argv: list[str] | None = None) -> str | None:
    """The one job's message body with ``--one-shot`` (and the node's settings defaulted for a
    Batch container); None without it (the polling host). Exits 2 if the message is missing or
    unreadable."""
    parser = argparse.ArgumentParser(prog="python -m builders.agent")
    parser.add_argument("--one-shot", action="store_true", help="run one job, then exit")
    parser.add_argument("--message-file", help=f"the message body (default: ${MESSAGE_ENV})")
    args = parser.parse_args(argv)
    if not args.one_shot:
        return None
    try:
        body = (
            Path(args.message_file).read_text(encoding="utf-8")
            if args.message_file
            else os.environ.get(MESSAGE_ENV, "")
        )
    except (OSError, UnicodeDecodeError) as exc:
        print(f"one-shot: cannot read the job message: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if not body.strip():
        print(f"one-shot: no job message (set {MESSAGE_ENV} or --message-file)", file=sys.stderr)
        raise SystemExit(2)
    batch_job = os.environ.get("AWS_BATCH_JOB_ID") or platform.node()
    os.environ.setdefault("KILN_HOST_XNAME", f"batch-{batch_job}")
    os.environ.setdefault("KILN_BUILD_QUEUE_URL", "")  # it reads no build queue
    return body


def token_of(body: str) -> str | None:
    try:
        token = json.loads(body).get("token")
    except (ValueError, AttributeError):
        return None
    return token if isinstance(token, str) and token else None


def token_closed(agent: Agent, token: str) -> bool:
    """One task heartbeat: True if Step Functions says the token is closed (any other error
    says nothing about the task: the job goes on, as the agent's own heartbeats do)."""
    from builders.answers import token_closed_code

    try:
        agent.reporter.heartbeat(token)
    except Exception as exc:
        code = token_closed_code(exc)
        if code is not None:
            agent.log.warning(
                "one-shot: the task token is closed already: nothing built, nothing answered",
                extra={"error_code": code, "reason": str(exc)},
            )
            return True
        agent.log.warning("one-shot: first heartbeat failed: going on", extra={"reason": str(exc)})
    return False


def run(agent: Agent, body: str) -> None:
    """The one job: node heartbeats while it runs, the token check, ``Agent.take``. A SIGTERM
    (Batch terminating the job) stops it unanswered, as on a polling host."""
    agent.announce()
    threading.Thread(target=agent._announce_loop, name="node-heartbeat", daemon=True).start()
    try:
        token = token_of(body)  # none: take() drops it, as the polling loop does
        if token is None or not token_closed(agent, token):
            agent.take(body)
    finally:
        agent.stopping.set()  # ends the node heartbeats
    agent.log.info("one-shot: done")
