"""The build-host agent: long-polls its arch's queue, heartbeats while it works, answers the
state machine. Idempotent per job; SIGTERM stops taking work and sends no partial result.

Run: python -m builders.agent   (settings from the environment: builders/host_config.py)
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import boto3
from aws_lambda_powertools import Logger

from builders.backends import available_backends
from builders.backends.base import BuildError
from builders.host_config import HostConfig
from builders.job_run import JobRun, Stopped
from builders.report import Reporter


class AnswerBook:
    """What this host answered for each job, on disk, so a redelivery gets the same answer."""

    def __init__(self, root: Path) -> None:
        self._root = root / "answers"
        self._root.mkdir(parents=True, exist_ok=True)

    def get(self, job_id: str) -> dict[str, Any] | None:
        path = self._root / f"{job_id}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def put(self, job_id: str, answer: dict[str, Any]) -> None:
        path = self._root / f"{job_id}.json"
        path.with_suffix(".tmp").write_text(json.dumps(answer))
        path.with_suffix(".tmp").replace(path)


class Agent:
    def __init__(self, config: HostConfig, sqs: Any, s3: Any, sfn: Any, logger: Logger) -> None:
        self.config = config
        self._sqs, self._s3 = sqs, s3
        self.reporter = Reporter(sqs, s3, sfn, config.events_queue_url, config.xname)
        self.answers = AnswerBook(config.work_dir)
        self.log = logger
        self.stopping = threading.Event()
        self.current_job: str | None = None
        self.recipe_types = sorted(
            t
            for b in available_backends()
            if not b.unavailable_reason(config.arch)
            for t in b.recipe_types
        )

    def stop(self, *_: Any) -> None:
        self.log.info("stop requested: taking no new work")
        self.stopping.set()

    def run(self) -> None:
        self.announce()
        threading.Thread(target=self._announce_loop, name="node-heartbeat", daemon=True).start()
        self.log.info(
            "polling",
            extra={"queue": self.config.build_queue_url, "recipe_types": self.recipe_types},
        )
        while not self.stopping.is_set():
            self.poll_once()
        self.log.info("stopped")

    def announce(self) -> None:
        self.reporter.node_heartbeat(
            self.config.arch, self.recipe_types, self.current_job, time.time()
        )

    def _announce_loop(self) -> None:
        while not self.stopping.wait(self.config.node_heartbeat_seconds):
            try:
                self.announce()
            except Exception:
                self.log.exception("node heartbeat failed")

    def poll_once(self) -> None:
        messages = self._sqs.receive_message(
            QueueUrl=self.config.build_queue_url,
            MaxNumberOfMessages=1,
            WaitTimeSeconds=self.config.poll_wait_seconds,
        ).get("Messages", [])
        for message in messages:
            self._sqs.delete_message(
                QueueUrl=self.config.build_queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
            body = json.loads(message["Body"])
            self.handle(body["job"], body["token"])

    def handle(self, job: dict[str, Any], token: str) -> None:
        job_id = job["job_id"]
        self.log.set_correlation_id(job_id)
        earlier = self.answers.get(job_id)
        if earlier is not None:
            self.log.info("job already answered: repeating the answer", extra=earlier)
            self._answer(token, earlier)
            return
        if self.stopping.is_set():
            return
        self.current_job = job_id
        self.announce()
        beat_stop = threading.Event()
        threading.Thread(target=self._beat, args=(token, beat_stop), daemon=True).start()
        run = JobRun(
            job,
            self.reporter,
            self._s3,
            self.config.work_dir,
            self.config.arch,
            self.stopping.is_set,
        )
        try:
            answer = self._execute(run)
        finally:
            beat_stop.set()
            self.current_job = None
        if answer is not None:
            self.answers.put(job_id, answer)
            self._answer(token, answer)
        self.announce()
        self.log.set_correlation_id(None)

    def _execute(self, run: JobRun) -> dict[str, Any] | None:
        started = time.monotonic()
        try:
            output = run.execute()
            self.log.info("build succeeded", extra={"seconds": time.monotonic() - started})
            return {"outcome": "success", "output": output}
        except Stopped:
            self.log.warning("build abandoned: host stopping; no answer sent")
            return None
        except BuildError as exc:
            if self.stopping.is_set():  # the backend gave up because the host is stopping
                self.log.warning("build abandoned: host stopping; no answer sent")
                return None
            reason = f"BuildFailed: {exc}"
        except Exception as exc:  # a host fault: still answer, so the job ends cleanly
            self.log.exception("build crashed")
            reason = f"HostError: {type(exc).__name__}: {exc}"
        run.log(reason)
        try:
            run.upload_log()
        except Exception:
            self.log.exception("could not upload the build log")
        self.log.warning("build failed", extra={"reason": reason})
        return {"outcome": "failure", "error": reason}

    def _answer(self, token: str, answer: dict[str, Any]) -> None:
        try:
            if answer["outcome"] == "success":
                self.reporter.succeed(token, answer["output"])
            else:
                self.reporter.fail(token, answer["error"])
        except Exception as exc:  # the token is closed already: the earlier answer counted
            self.log.info("answer not taken", extra={"reason": str(exc)})

    def _beat(self, token: str, stop: threading.Event) -> None:
        while not stop.wait(self.config.task_heartbeat_interval):
            if self.stopping.is_set():
                return  # a stopping host goes silent so the state machine retries elsewhere
            try:
                self.reporter.heartbeat(token)
            except Exception as exc:
                self.log.warning("task heartbeat refused", extra={"reason": str(exc)})


def main() -> None:
    config = HostConfig.from_env()
    session = boto3.session.Session(region_name=config.region)
    logger = Logger(service="kiln-build-host")
    logger.append_keys(xname=config.xname, arch=config.arch)
    agent = Agent(
        config, session.client("sqs"), session.client("s3"), session.client("stepfunctions"), logger
    )
    signal.signal(signal.SIGTERM, agent.stop)
    signal.signal(signal.SIGINT, agent.stop)
    agent.run()


if __name__ == "__main__":
    main()
