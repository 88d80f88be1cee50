"""The Batch feeder: an arch whose builds run on AWS Batch has no polling host; this takes the
arch's build-queue messages and submits one Batch job each, whose container runs the agent in
one-shot mode with the message in ``KILN_JOB_MESSAGE`` (builders/one_shot.py, docs/batch.md).
On AWS a Lambda invoked every minute (``lambda_handler``); locally ``python -m
builders.batch_feeder`` (passes until SIGTERM).

The node. The service dispatches a job only to a registered node with a fresh heartbeat and a
free slot; a Batch container is neither registered nor alive before its job runs. So the feeder
heartbeats a node of its own (``batch-<arch>``, registered by an admin like any host) for the
compute environment, with the hosts' protocol (NodeHeartbeat on the build-events queue), its
``slots`` the jobs the compute environment runs at once, and reads its registration from the
same control object a host reads: a deregistered feeder takes no new messages.

Delivery is at least once, and a job may wait long for capacity, so each pass:

1. receives up to 10 messages (long poll of at most 5 s). Per message: the Batch job name is
   ``kiln-<job id>-<sha256(token)[:16]>``: a redelivered message names the same job. A body
   too large for a container override fails the task (HostError) and is deleted. Unless a job
   of that name is in the job queue and not FAILED (ListJobs, JOB_NAME filter), it is
   submitted. Then the task token is heartbeaten: accepted, the message is deleted (from now
   on the Batch job stands for it, so waiting for capacity never counts towards the queue's
   maxReceiveCount and no message reaches the dead-letter queue); refused as closed, the
   message is deleted and the job terminated; any other error leaves the message to come back
   in 30 s (visibility), the job found by name then.
2. lists the queue's SUBMITTED, PENDING, RUNNABLE and STARTING jobs and heartbeats each one's
   token (read back from its environment with DescribeJobs), so Step Functions'
   HeartbeatSeconds does not time the task out while the job waits; a closed token terminates
   the job. Once RUNNING, the agent heartbeats (its first beat at start, and a closed token
   then means it builds nothing).
3. fails the task of each job that FAILED without ever starting (stopped in the last 15
   minutes), with Batch's status reason. Jobs that started and failed are the agent's: it
   answered, or it went silent and the state machine's heartbeat timeout ends the attempt, as
   for a host that dies.

A crash anywhere repeats a step at worst: a message comes back and finds its job by name; a
heartbeat or failure sent twice is harmless. Two feeders at once could both submit a message's
job before either lists it: the second container finds the token closed, or both build and the
first answer counts (run the Lambda with reserved concurrency 1).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
from aws_lambda_powertools import Logger

from builders.agent import capabilities
from builders.answers import token_closed_code
from builders.control import Control
from builders.one_shot import MESSAGE_ENV
from builders.report import Reporter, spelled
from chalicelib.host_protocol import Failure, FailureCode, NodeHeartbeat

#: SubmitJob's container overrides, as JSON, are limited to 8 KiB (the ECS task overrides)
OVERRIDES_LIMIT = 8192
WAITING = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING")
FAILED_WINDOW_SECONDS = 900
log = Logger(service="kiln-batch-feeder")
_failed_seen: set[str] = set()  # Batch jobs whose task this process failed (or terminated)


def _csv(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(p.strip() for p in text.split(",") if p.strip())


@dataclasses.dataclass(frozen=True)
class FeederConfig:
    arch: str
    build_queue_url: str
    events_queue_url: str
    job_queue: str
    job_definition: str
    recipe_types: tuple[str, ...]
    job_types: tuple[str, ...]
    slots: int = 4  # jobs the compute environment runs at once (the node's slots)
    bucket: str = "kiln-artifacts"
    region: str = "us-east-1"
    endpoint_url: str | None = None
    wait_seconds: int = 5  # the receive's long poll
    retry_visibility: int = 30  # a message whose heartbeat failed comes back after this
    node_heartbeat_seconds: float = 10.0

    @property
    def xname(self) -> str:
        return f"batch-{self.arch}"

    @classmethod
    def from_env(cls, env: Any = os.environ) -> FeederConfig:
        arch = env["KILN_HOST_ARCH"]
        recipe_types, job_types = (
            _csv(env.get("KILN_BATCH_RECIPE_TYPES")),
            _csv(env.get("KILN_BATCH_JOB_TYPES")),
        )
        if recipe_types is None or job_types is None:  # what this machine's host would serve
            here = capabilities(arch)
            recipe_types, job_types = recipe_types or tuple(here[0]), job_types or tuple(here[1])
        return cls(
            arch=arch,
            build_queue_url=env["KILN_BUILD_QUEUE_URL"],
            events_queue_url=env["KILN_BUILD_EVENTS_QUEUE_URL"],
            job_queue=env["KILN_BATCH_JOB_QUEUE"],
            job_definition=env["KILN_BATCH_JOB_DEFINITION"],
            recipe_types=recipe_types,
            job_types=job_types,
            slots=int(env.get("KILN_BATCH_SLOTS", "4")),
            bucket=env.get("KILN_ARTIFACT_BUCKET", "kiln-artifacts"),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION", "us-east-1"),
            endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
        )


def batch_job_name(job_id: str, token: str) -> str:
    """Batch-legal (letters, digits, - and _, at most 128) and the same for a redelivery."""
    digest = hashlib.sha256(token.encode()).hexdigest()[:16]
    safe = re.sub(r"[^A-Za-z0-9_-]", "-", job_id or "unknown")[: 128 - len(digest) - 6]
    return f"kiln-{safe}-{digest}"


def overrides_for(body: str) -> dict[str, Any]:
    return {"environment": [{"name": MESSAGE_ENV, "value": body}]}


def _list(batch: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    token = None
    while True:
        page = batch.list_jobs(**kwargs, **({"nextToken": token} if token else {}))
        yield from page.get("jobSummaryList", [])
        token = page.get("nextToken")
        if not token:
            return


def _described(batch: Any, job_ids: list[str]) -> Iterator[dict[str, Any]]:
    for start in range(0, len(job_ids), 100):
        yield from batch.describe_jobs(jobs=job_ids[start : start + 100]).get("jobs", [])


def token_in(job: dict[str, Any]) -> str | None:
    """The task token in a described job's ``KILN_JOB_MESSAGE``."""
    for item in job.get("container", {}).get("environment", []):
        if item.get("name") == MESSAGE_ENV:
            try:
                token = json.loads(item.get("value", "")).get("token")
            except (ValueError, AttributeError):
                return None
            return token if isinstance(token, str) else None
    return None


def _heartbeat(sfn: Any, token: str) -> str:
    """'ok', 'closed' (the task is over) or 'error' (says nothing about the task)."""
    try:
        sfn.send_task_heartbeat(taskToken=token)
    except Exception as exc:
        if token_closed_code(exc) is not None:
            return "closed"
        log.warning("task heartbeat failed", extra={"reason": str(exc)})
        return "error"
    return "ok"


def _fail(sfn: Any, token: str, failure: Failure) -> None:
    try:
        sfn.send_task_failure(taskToken=token, error=failure.to_error(), cause=spelled(failure))
    except Exception as exc:
        if token_closed_code(exc) is None:
            raise
        log.info("task already closed", extra={"reason": str(exc)})


def _terminate(batch: Any, job_id: str, why: str) -> None:
    _failed_seen.add(job_id)
    batch.terminate_job(jobId=job_id, reason=f"Kiln: {why}"[:1024])


def feed_once(
    sqs: Any, batch: Any, sfn: Any, config: FeederConfig, *, receive: bool = True
) -> dict[str, int]:
    """One pass (see the module's docstring); ``receive=False`` (a deregistered node) only
    looks after jobs already submitted. Returns counts of what it did."""
    summary: collections.Counter[str] = collections.Counter()
    if receive:
        messages = sqs.receive_message(
            QueueUrl=config.build_queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=min(config.wait_seconds, 5),
        ).get("Messages", [])
        for message in messages:
            summary["received"] += 1
            summary[_take(sqs, batch, sfn, config, message)] += 1
    _beat_waiting(batch, sfn, config, summary)
    _fail_unstarted(batch, sfn, config, summary)
    return {key: count for key, count in summary.items() if count}


def _take(sqs: Any, batch: Any, sfn: Any, config: FeederConfig, message: dict[str, Any]) -> str:
    body = message["Body"]

    def delete() -> None:
        sqs.delete_message(QueueUrl=config.build_queue_url, ReceiptHandle=message["ReceiptHandle"])

    try:
        parsed = json.loads(body)
        token = parsed["token"]
        raw_job = parsed.get("job")
    except (ValueError, TypeError, KeyError, AttributeError):
        log.error("build queue message without a task token: dropped")
        delete()
        return "dropped"
    job_id = str(raw_job.get("job_id", "")) if isinstance(raw_job, dict) else ""
    overrides = overrides_for(body)
    size = len(json.dumps(overrides))
    if size > OVERRIDES_LIMIT:
        text = (
            f"the job message is {size} bytes as an AWS Batch container override; Batch takes "
            f"at most {OVERRIDES_LIMIT}: job {job_id} cannot run on the {config.arch} Batch "
            "compute environment (make the job smaller, or serve the arch with a build host)"
        )
        log.error("job message too large for Batch", extra={"job_id": job_id, "bytes": size})
        _fail(sfn, token, Failure(FailureCode.HOST_ERROR, text))
        delete()
        return "too_large"
    name = batch_job_name(job_id, token)
    existing = [
        job["jobId"]
        for job in _list(
            batch, jobQueue=config.job_queue, filters=[{"name": "JOB_NAME", "values": [name]}]
        )
        if job.get("jobName") == name and job.get("status") != "FAILED"
    ]
    outcome = "found"
    if not existing:
        submitted = batch.submit_job(
            jobName=name,
            jobQueue=config.job_queue,
            jobDefinition=config.job_definition,
            containerOverrides=overrides,
        )
        existing, outcome = [submitted["jobId"]], "submitted"
        log.info("batch job submitted", extra={"job_id": job_id, "batch_job": name})
    beat = _heartbeat(sfn, token)
    if beat == "error":  # the message comes back; its job is found by name then
        sqs.change_message_visibility(
            QueueUrl=config.build_queue_url,
            ReceiptHandle=message["ReceiptHandle"],
            VisibilityTimeout=config.retry_visibility,
        )
        return f"{outcome}_retry"
    delete()
    if beat == "closed":
        for batch_job in existing:
            _terminate(batch, batch_job, "the task token is closed (the task is over)")
        return "closed"
    return outcome


def _beat_waiting(batch: Any, sfn: Any, config: FeederConfig, summary: Any) -> None:
    ids = [job["jobId"] for status in WAITING for job in _list(batch, **_queue(config, status))]
    for job in _described(batch, ids):
        token = token_in(job)
        if token is None or job.get("status") not in WAITING:
            continue
        beat = _heartbeat(sfn, token)
        summary[f"waiting_{beat}"] += 1
        if beat == "closed":
            _terminate(batch, job["jobId"], "the task token is closed (the task is over)")


def _fail_unstarted(batch: Any, sfn: Any, config: FeederConfig, summary: Any) -> None:
    since = (time.time() - FAILED_WINDOW_SECONDS) * 1000
    ids = [
        job["jobId"]
        for job in _list(batch, **_queue(config, "FAILED"))
        if not job.get("startedAt")
        and job.get("stoppedAt", since) >= since
        and job["jobId"] not in _failed_seen
    ]
    for job in _described(batch, ids):
        token = token_in(job)
        _failed_seen.add(job["jobId"])
        if token is None:
            continue
        reason = job.get("statusReason") or "no reason given"
        text = f"the AWS Batch job {job.get('jobName')} failed before it ran: {reason}"
        _fail(sfn, token, Failure(FailureCode.HOST_ERROR, text))
        summary["failed_unstarted"] += 1


def _queue(config: FeederConfig, status: str) -> dict[str, Any]:
    return {"jobQueue": config.job_queue, "jobStatus": status}


class Feeder:
    """Passes with the node's heartbeat every ``node_heartbeat_seconds``."""

    def __init__(self, config: FeederConfig, session: Any | None = None) -> None:
        session = session or boto3.session.Session(region_name=config.region)
        self.sqs, self.s3, self.batch, self.sfn = (
            session.client(name, endpoint_url=config.endpoint_url)
            for name in ("sqs", "s3", "batch", "stepfunctions")
        )
        self.config = config
        self.reporter = Reporter(self.sqs, self.s3, self.sfn, config.events_queue_url, config.xname)
        self.control = Control(self.s3, config.bucket, config.xname, log)
        self._announced, self._accepting = 0.0, False

    def announce(self) -> bool:
        """The node's heartbeat (NodeHeartbeat, the hosts' message); whether it is registered."""
        self._accepting = self.control.registered()
        c = self.config
        self.reporter.event(
            NodeHeartbeat(
                xname=c.xname,
                arch=c.arch,
                recipe_types=list(c.recipe_types),
                job_types=list(c.job_types),
                accepting=self._accepting,
                time=time.time(),
                slots=c.slots,
            )
        )
        self._announced = time.monotonic()
        return self._accepting

    def run(self, done: Callable[[], bool]) -> collections.Counter[str]:
        total: collections.Counter[str] = collections.Counter()
        while not done():
            try:
                if time.monotonic() - self._announced >= self.config.node_heartbeat_seconds:
                    self.announce()
                summary = feed_once(
                    self.sqs, self.batch, self.sfn, self.config, receive=self._accepting
                )
            except Exception:
                log.exception("feeder pass failed")
                time.sleep(1)
                continue
            if summary:
                log.info("feeder pass", extra={"summary": summary})
            total.update(summary)
            if not self._accepting:  # no long poll to pace the passes
                time.sleep(self.config.wait_seconds)
        return total


def lambda_handler(event: Any, context: Any) -> dict[str, int]:
    """Invoked every minute: passes for about 50 s (and never closer than 10 s to the
    Lambda's timeout)."""
    remaining = context.get_remaining_time_in_millis() / 1000 if context else 60.0
    deadline = time.monotonic() + max(0.0, min(50.0, remaining - 10.0))
    feeder = Feeder(FeederConfig.from_env())
    return dict(feeder.run(lambda: time.monotonic() >= deadline))


def main() -> None:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    config = FeederConfig.from_env()
    log.info("feeding", extra={"queue": config.build_queue_url, "job_queue": config.job_queue})
    Feeder(config).run(stop.is_set)


if __name__ == "__main__":
    main()
