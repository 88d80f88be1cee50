"""The build-host agent: long-polls its arch's queue while registered, heartbeats while it
works, answers the state machine. Idempotent per job; SIGTERM stops taking work and sends no
partial result; a job whose cancel object appears is stopped and answered "Cancelled: ...";
a job whose task token is closed (timed out, execution stopped, unknown token) is stopped and
neither answered nor remembered; a job message it cannot read (another protocol version) is
answered "ProtocolMismatch: ..." (or "HostError: ...") and not built. The protocol is
chalicelib/host_protocol.py, in prose docs/build-hosts.md.

Run: python -m builders.agent   (settings from the environment: builders/host_config.py)
One-shot (an AWS Batch job): python -m builders.agent --one-shot (builders/one_shot.py).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from typing import Any

import boto3
from aws_lambda_powertools import Logger

from builders import customize, hand_back, one_shot, ssh_session, uploads, workdir
from builders.answers import Answer, AnswerBook, TokenClosed, token_closed_code
from builders.backends import available_backends
from builders.backends.base import BuildError
from builders.cachito import run as cachito_run
from builders.control import Control
from builders.customize import CustomizeRun
from builders.host_config import HostConfig
from builders.job_run import CANCELLED, CreateRun, JobRun, Stopped
from builders.koji_import import KojiImportRun
from builders.report import Reporter, spelled
from chalicelib.host_protocol import (
    BuildOutput,
    Failure,
    FailureCode,
    JobMessage,
    ProtocolError,
    ProtocolMismatch,
)

RUNS: dict[str, type[JobRun]] = {
    "create": CreateRun,
    "customize": CustomizeRun,
    "cachito": cachito_run.CachitoRun,
    "koji-import": KojiImportRun,
}


def capabilities(arch: str) -> tuple[list[str], list[str]]:
    """The recipe types and job types a host on this machine serves for ``arch``."""
    backends = [b for b in available_backends() if not b.unavailable_reason(arch)]
    job_types = (
        ["create"]
        + ([] if customize.unavailable_reason() else ["customize"])
        + ([] if cachito_run.unavailable_reason() else ["cachito"])
        + ["koji-import"]
    )
    return sorted(t for b in backends for t in b.recipe_types), job_types


class Agent:
    def __init__(
        self,
        config: HostConfig,
        sqs: Any,
        s3: Any,
        sfn: Any,
        logger: Logger,
        clients: uploads.ClientFactory | None = None,
    ) -> None:
        self.config = config
        self._sqs, self._s3 = sqs, s3
        # clients for upload targets, per (service, region): made on first use
        self._clients = clients or uploads.Clients(config.endpoint_url)
        self.reporter = Reporter(sqs, s3, sfn, config.events_queue_url, config.xname)
        self.answers = AnswerBook(config.work_dir)
        self.control = Control(s3, config.bucket, config.xname, logger)
        self.log = logger
        self.stopping = threading.Event()
        self.finishing = threading.Event()  # finish(): the job in hand, then no more
        self.current_job: str | None = None
        self.recipe_types, self.job_types = capabilities(config.arch)

    def stop(self, *_: Any) -> None:
        self.log.info("stop requested: taking no new work")
        self.stopping.set()

    def finish(self, *_: Any) -> None:
        """SIGUSR1, a scale-in's drain: finish the job in hand, take no new one, then return
        from run() (SIGTERM, stop(), abandons the job to the state machine's retry instead)."""
        self.log.info("finish requested: finishing the job in hand, taking no new work")
        self.finishing.set()

    def run(self) -> None:
        try:
            ssh_session.clean_stale(self.config.ssh)
        except Exception:
            self.log.exception("could not clean up stale SSH sessions")
        # this host owns its work dir: a tool still working in a job's dir there, or a mount
        # in it, was left by a predecessor killed mid-build (the job, built again, would
        # find its dir neither free nor empty)
        jobs = self.config.work_dir / "jobs"
        killed, left = workdir.kill_working_in(jobs), workdir.unmount_below(jobs)
        if killed or left:
            self.log.warning(
                "cleared what a killed build left", extra={"killed": killed, "mounts": left}
            )
        self.announce()
        threading.Thread(target=self._announce_loop, name="node-heartbeat", daemon=True).start()
        self.log.info(
            "polling",
            extra={
                "queue": self.config.build_queue_url,
                "recipe_types": self.recipe_types,
                "job_types": self.job_types,
            },
        )
        while not self.stopping.is_set() and not self.finishing.is_set():
            self.poll_once()  # a job it takes runs to its answer in here
        self.log.info("stopped")

    def accepting(self) -> bool:
        """Registered (control/build-nodes/<xname>.json), not stopping nor finishing."""
        if self.stopping.is_set() or self.finishing.is_set():
            return False
        return self.control.registered()

    def announce(self) -> None:
        self.reporter.node_heartbeat(
            self.config.arch,
            self.recipe_types,
            self.current_job,
            time.time(),
            job_types=self.job_types,
            accepting=self.accepting(),
        )

    def _announce_loop(self) -> None:
        while not self.stopping.wait(self.config.node_heartbeat_seconds):
            try:
                self.announce()
            except Exception:
                self.log.exception("node heartbeat failed")

    def poll_once(self) -> None:
        if not self.accepting():  # not registered (or draining): take no work, keep announcing
            self.stopping.wait(self.config.poll_wait_seconds)
            return
        messages = self._sqs.receive_message(
            QueueUrl=self.config.build_queue_url,
            MaxNumberOfMessages=1,
            WaitTimeSeconds=self.config.poll_wait_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", [])
        for message in messages:
            # drained while this receive waited, or a rebuild check meant for another host
            xname = self.config.xname
            hidden = 0 if not self.accepting() else hand_back.handed_back_for(message, xname)
            if hidden is not None:
                self._sqs.change_message_visibility(
                    QueueUrl=self.config.build_queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=hidden,
                )
                continue
            self._sqs.delete_message(
                QueueUrl=self.config.build_queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
            self.take(message["Body"])

    def take(self, message_body: str) -> None:
        """One build-queue message, ``{"job": <JobMessage>, "token": <task token>}``: the job
        is run, or refused (answered, not built) if its message is not one this host reads."""
        try:
            body = json.loads(message_body)
            token = body["token"]
        except (ValueError, TypeError, KeyError):  # no token: there is nobody to answer
            self.log.error("build queue message without a task token: dropped")
            return
        try:
            job = JobMessage.from_dict(body.get("job"))
        except ProtocolError as exc:
            self._refuse(body.get("job"), token, exc)
            return
        self.handle(job, token)

    def _refuse(self, raw: Any, token: str, problem: ProtocolError) -> None:
        """Answer a job message this host cannot read: another protocol version is
        PROTOCOL_MISMATCH, anything else HOST_ERROR. Nothing is built, and nothing kept: a
        redelivery is read again (by this host or another)."""
        job_id = raw.get("job_id") if isinstance(raw, dict) else None
        mismatch = isinstance(problem, ProtocolMismatch)
        code = FailureCode.PROTOCOL_MISMATCH if mismatch else FailureCode.HOST_ERROR
        failure = Failure(code, f"host {self.config.xname} cannot read the job: {problem}")
        self.log.error("job message refused", extra={"job_id": job_id, "reason": spelled(failure)})
        self._answer(token, failure)

    def handle(self, job: JobMessage, token: str) -> None:
        job_id = job.job_id
        self.log.set_correlation_id(job_id)
        earlier = self.answers.get(job_id)
        if earlier is not None:
            self.log.info("job already answered: repeating the answer", extra={"answer": earlier})
            self._answer(token, earlier)
            return
        if self.stopping.is_set():
            return
        if self._cancel_requested(job):
            self.log.warning("job cancelled before it started")
            self._finish(job_id, token, CANCELLED)
            return
        cancelled, closed = threading.Event(), TokenClosed()
        self.current_job = job_id
        self.announce()
        beat_stop = threading.Event()
        threading.Thread(
            target=self._beat, args=(token, job, beat_stop, cancelled, closed), daemon=True
        ).start()
        try:
            answer = self._execute(job, cancelled, closed)
        finally:
            beat_stop.set()
            self.current_job = None
        if answer is not None:
            self._finish(job_id, token, answer)
        self.announce()
        self.log.set_correlation_id(None)

    def _finish(self, job_id: str, token: str, answer: Answer) -> None:
        self.answers.put(job_id, answer)
        self._answer(token, answer)

    def _cancel_requested(self, job: JobMessage) -> bool:
        return self.control.cancelled(job.bucket, job.cancel_key)

    def _execute(
        self, job: JobMessage, cancelled: threading.Event, closed: TokenClosed
    ) -> Answer | None:
        job_type = job.job_type or "create"
        run_class = RUNS.get(job_type)
        if run_class is None:
            return Failure(
                FailureCode.BUILD_FAILED,
                f"host {self.config.xname} cannot run job type {job_type!r}",
            )
        run = run_class(
            job,
            self.reporter,
            self._s3,
            self.config,
            # a closed token interrupts the run as a stopping host does (Stopped, no answer)
            lambda: self.stopping.is_set() or closed.is_set(),
            cancelled.is_set,
            clients=self._clients,
        )
        started = time.monotonic()
        try:
            output = run.execute()
        except Exception as exc:
            return self._failure(run, exc, closed)
        self.log.info("build succeeded", extra={"seconds": time.monotonic() - started})
        return output

    def _failure(self, run: JobRun, exc: Exception, closed: TokenClosed) -> Failure | None:
        """The answer for a run that raised: abandoned (None: token closed, host stopping),
        cancelled, or failed (the BuildError's code; HOST_ERROR for anything else)."""
        if closed.is_set():  # nobody takes an answer now; a redelivery must build afresh
            self._abandon(run, exc, closed.reason)
            return None
        if run.cancelled():  # however the run ended, its owner cancelled the job
            self.log.warning("job cancelled: answering so", extra={"raised": repr(exc)})
            failure = CANCELLED
        elif isinstance(exc, Stopped) or (isinstance(exc, BuildError) and self.stopping.is_set()):
            self.log.warning("build abandoned: host stopping; no answer sent")
            return None
        elif isinstance(exc, BuildError):
            failure = Failure(exc.code, str(exc))
        else:  # a host fault: still answer, so the job ends cleanly
            self.log.error("build crashed", exc_info=exc)
            failure = Failure(FailureCode.HOST_ERROR, f"{type(exc).__name__}: {exc}")
        run.log(spelled(failure))
        try:
            run.upload_log()
        except Exception:
            self.log.exception("could not upload the build log")
        self.log.warning("build failed", extra={"reason": spelled(failure)})
        return failure

    def _abandon(self, run: JobRun, exc: Exception, refusal: str) -> None:
        """A job whose task token closed: its log so far goes up, no answer is sent or kept."""
        self.log.warning(
            "job stopped: its task token is closed (task timed out, execution stopped or "
            "token unknown); no answer sent or kept",
            extra={"refusal": refusal, "raised": repr(exc)},
        )
        run.log(f"E: kiln: job stopped: Step Functions closed its task ({refusal})")
        try:
            run.upload_log()
        except Exception:
            self.log.exception("could not upload the build log")

    def _answer(self, token: str, answer: Answer) -> None:
        try:
            if isinstance(answer, BuildOutput):
                self.reporter.succeed(token, answer)
            else:
                self.reporter.fail(token, answer)
        except Exception as exc:  # the token is closed already: the earlier answer counted
            self.log.info("answer not taken", extra={"reason": str(exc)})

    def _beat(
        self,
        token: str,
        job: JobMessage,
        stop: threading.Event,
        cancelled: threading.Event,
        closed: TokenClosed,
    ) -> None:
        """Task heartbeats (a refusal that says the token is closed stops the job; any other
        error is beaten through), and on each tick the job's cancel check."""
        while not stop.wait(self.config.task_heartbeat_interval):
            if self.stopping.is_set():
                return  # a stopping host goes silent so the state machine retries elsewhere
            try:
                self.reporter.heartbeat(token)
            except Exception as exc:
                code = token_closed_code(exc)
                if code is not None:
                    self.log.warning(
                        "task heartbeat refused: the task token is closed; stopping the job",
                        extra={"error_code": code, "reason": str(exc)},
                    )
                    closed.reason = f"{code}: {exc}"
                    closed.set()
                    return
                self.log.warning(
                    "task heartbeat failed (transient): the job goes on",
                    extra={"reason": str(exc)},
                )
            if not cancelled.is_set() and self._cancel_requested(job):
                self.log.warning("job cancelled: stopping it")
                cancelled.set()


#: The exit status after finish() (SIGUSR1): drained on purpose (systemd:
#: RestartPreventExitStatus, infra/cdk/assets/host_bootstrap.sh)
FINISHED_EXIT = 75


def main(argv: list[str] | None = None) -> None:
    message = one_shot.message(argv)  # --one-shot: the one job's message; else None (polling)
    config = HostConfig.from_env()
    session = boto3.session.Session(region_name=config.region)
    logger = Logger(service="kiln-build-host")
    logger.append_keys(xname=config.xname, arch=config.arch)
    sqs, s3, sfn = (
        session.client(name, endpoint_url=config.endpoint_url)
        for name in ("sqs", "s3", "stepfunctions")
    )
    agent = Agent(config, sqs, s3, sfn, logger, uploads.Clients(config.endpoint_url))
    signal.signal(signal.SIGTERM, agent.stop)
    signal.signal(signal.SIGINT, agent.stop)
    signal.signal(signal.SIGUSR1, agent.finish)
    agent.run() if message is None else one_shot.run(agent, message)
    if agent.finishing.is_set():
        raise SystemExit(FINISHED_EXIT)  # its service manager must not start it again


if __name__ == "__main__":
    main()
