"""Live build logs: new lines go to S3 as numbered chunks while the job runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from builders.live_log import LiveLog, chunk_key

BUCKET = "kiln-artifacts"
PREFIX = "jobs/j-1/log/"


@pytest.fixture
def s3(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.lock = threading.Lock()

    def add(self, *lines: str) -> None:
        with self.lock:
            self.lines.extend(lines)

    def since(self, start: int) -> list[str]:
        with self.lock:
            return self.lines[start:]


def chunks(s3: Any) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX).get("Contents", [])
    return {
        o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
        for o in sorted(listed, key=lambda o: o["Key"])
    }


def wait_for(condition: Any, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_new_lines_go_up_as_numbered_chunks_that_make_the_whole_log(s3: Any) -> None:
    lines = Lines()
    live = LiveLog(s3, BUCKET, PREFIX, lines.since, interval=0.05).start()
    lines.add("one", "two")
    wait_for(lambda: len(chunks(s3)) == 1)
    time.sleep(0.2)  # idle ticks send nothing
    assert list(chunks(s3)) == [chunk_key(PREFIX, 0)] == [f"{PREFIX}000000.log"]
    lines.add("three")
    wait_for(lambda: len(chunks(s3)) == 2)
    lines.add("four", "five")
    live.close()
    got = chunks(s3)
    assert list(got) == [f"{PREFIX}{n:06d}.log" for n in range(3)]
    assert b"".join(got.values()) == b"one\ntwo\nthree\nfour\nfive\n"
    head = s3.head_object(Bucket=BUCKET, Key=f"{PREFIX}000000.log")
    assert head["ContentType"] == "text/plain"
    lines.add("after the end")  # e.g. the failure reason: a later close sends it too
    live.close()
    assert b"".join(chunks(s3).values()).endswith(b"five\nafter the end\n")


class Flaky:
    """S3 that refuses the first ``failures`` puts."""

    def __init__(self, real: Any, failures: int) -> None:
        self.real, self.failures, self.puts = real, failures, 0

    def put_object(self, **kwargs: Any) -> Any:
        self.puts += 1
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("S3 unreachable")
        return self.real.put_object(**kwargs)


def test_a_failed_chunk_is_sent_again_unchanged_and_no_line_is_lost(s3: Any) -> None:
    lines = Lines()
    flaky = Flaky(s3, failures=2)
    live = LiveLog(flaky, BUCKET, PREFIX, lines.since, interval=3600)  # ticks by hand
    lines.add("a", "b")
    assert live.flush() is False  # not fatal
    lines.add("c")
    assert live.flush() is False
    assert chunks(s3) == {}
    assert live.flush() is True  # the same chunk 0 again, then the newer line as chunk 1
    assert chunks(s3) == {f"{PREFIX}000000.log": b"a\nb\n", f"{PREFIX}000001.log": b"c\n"}
    assert flaky.puts == 4


def test_close_flushes_what_a_failing_store_let_through(s3: Any) -> None:
    lines = Lines()
    live = LiveLog(Flaky(s3, failures=1), BUCKET, PREFIX, lines.since, interval=3600).start()
    lines.add("x")
    live.close()
    assert chunks(s3) == {f"{PREFIX}000000.log": b"x\n"}


def test_a_store_that_never_answers_does_not_stop_the_job(s3: Any) -> None:
    lines = Lines()
    live = LiveLog(Flaky(s3, failures=10**6), BUCKET, PREFIX, lines.since, interval=3600)
    lines.add("x")
    live.close()  # gives up quietly: the full log still has the line
    assert chunks(s3) == {}
