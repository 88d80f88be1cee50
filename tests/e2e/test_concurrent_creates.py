"""Ten creates at once against the `make up` stack's one x86_64 build host (one slot): one
builds at a time, the others wait in Kiln, and all ten succeed in turn (none goes silent in a
build queue behind a busy host)."""

from __future__ import annotations

import concurrent.futures

import pytest

from infra.local.process import StackProcess
from tests.conftest import make_archive
from tests.e2e.test_local_stack import public_key, start_job, upload_recipe, wait_for_job

pytestmark = pytest.mark.slow


def test_ten_concurrent_creates_run_one_at_a_time_and_all_succeed(stack: StackProcess) -> None:
    recipe = upload_recipe(
        stack,
        {"name": "capacity", "recipe_type": "kiln-noop", "linux_distribution": "debian12"},
        make_archive({"recipe.yaml": "sleep: 1.5\n"}),
    )
    key = public_key(stack)
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        ids = list(pool.map(lambda n: start_job(stack, recipe, key, f"c{n}"), range(10)))
    jobs = [wait_for_job(stack, job_id, timeout=240)[0] for job_id in ids]
    assert [job["status"] for job in jobs] == ["success"] * 10, [
        job["status_reason"] for job in jobs
    ]
    windows = sorted(
        (job["timing"]["host_started"], job["timing"]["host_answered"]) for job in jobs
    )
    for (_, answered), (started, _) in zip(windows, windows[1:], strict=False):
        assert started >= answered - 0.5, f"two jobs built at once on one slot: {windows}"
