"""A build host killed mid-build comes back (the stack's supervisor) and its job still ends in
success: the task heartbeat runs out, the state machine's Retry sends the job again, and the
restarted host (same xname, still registered) builds it afresh."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from infra.local.process import StackProcess
from infra.local.stack import native_arch
from tests.conftest import free_port, make_archive
from tests.e2e.test_local_stack import public_key, start_job, upload_recipe, wait_for_job

pytestmark = pytest.mark.slow
SLEEP = 4  # the noop build's length, seconds
HEARTBEAT = 3  # the state machine's HeartbeatSeconds: how soon a dead host's job is retried


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"  # a zombie is gone
    except OSError:
        return False


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout}s")


def test_killed_host_is_restarted_and_its_job_is_retried_to_success(tmp_path: Path) -> None:
    xname = f"local-{native_arch()}"
    settings = {"KILN_BUILD_HOSTS": native_arch(), "KILN_HEARTBEAT_SECONDS": str(HEARTBEAT)}
    with StackProcess(tmp_path, free_port(), free_port(), **settings) as stack:
        body = {"name": "slow", "recipe_type": "kiln-noop", "linux_distribution": "debian12"}
        recipe = upload_recipe(stack, body, make_archive({"recipe.yaml": f"sleep: {SLEEP}\n"}))
        job_id = start_job(stack, recipe, public_key(stack), "restart")
        host_dir = tmp_path / "hosts" / xname  # the host's work dir: jobs/<id> while it runs
        wait_until(lambda: (host_dir / "jobs" / job_id).exists(), 30, "the host taking the job")
        time.sleep(0.5)  # into the build (the API hears of it later than the host's disk)
        before = stack.host_process(xname)
        assert before["restarts"] == 0
        killed_at = time.time()
        os.kill(before["pid"], signal.SIGKILL)
        answer = host_dir / "answers" / f"{job_id}.json"
        assert not answer.exists()  # killed mid-build: nothing answered

        wait_until(lambda: stack.host_process(xname)["restarts"] == 1, 5, "a restart")
        after = stack.host_process(xname)
        assert after["pid"] != before["pid"] and alive(after["pid"])
        assert after["started"] - killed_at < 3  # promptly, as an Auto Scaling group would

        done, _ = wait_for_job(stack, job_id, timeout=60)
        assert done["status"] == "success", (done, stack.output())
        assert done["build_node"] == xname
        # built again on the restarted host (its answer book had nothing for the job), in full
        assert done["timing"]["host_answered"] - after["started"] >= SLEEP
        assert answer.exists()
        output = (tmp_path / "stack.log").read_text(errors="replace")
        assert f"build host {xname} (pid {before['pid']}) exited: killed by SIGKILL" in output
        assert f"build host {xname} restarted: pid {after['pid']} (restart 1)" in output
    # Ctrl-C stopped it for good: no restart during shutdown
    assert stack.process is not None and stack.process.returncode == 0
    wait_until(lambda: not alive(after["pid"]), 5, "the host's exit")
    assert "restart 2" not in (tmp_path / "stack.log").read_text(errors="replace")
