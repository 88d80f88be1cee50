"""The web console in a real headless browser against the `make up` stack with real build
hosts: sign in (a bad token refused with the API's message), a real Debian build seen running
in the builds list, its page following the live log as it grows until the build succeeds, its
stages, an artifact downloaded whose SHA-256 is the one shown, and a Glance image uploaded
through the API, listed and downloaded. Screenshots go to KILN_SCREENSHOT_DIR (the committed
docs/screenshots/console-*.png come from a run with KILN_SCREENSHOT_DIR=docs/screenshots)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from infra.local.process import StackProcess
from tests.console.browser import (
    by_testid,
    chrome,
    downloaded,
    go,
    one,
    open_console,
    row_with,
    screenshot,
    screenshot_dir,
    severe_console_errors,
    sha256,
    sign_in,
    wait_for,
)
from tests.e2e.test_local_stack import public_key, upload_example

pytestmark = pytest.mark.slow
BUILD_TIMEOUT = 900
#: the statuses the build page shows as its steps so far
STEPS = "return [...document.querySelectorAll('[data-testid=step]')].map(e => e.dataset.status)"


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[WebDriver]:
    with chrome(downloads) as driver:
        yield driver


def _start_build(stack: StackProcess, recipe_id: str, **extra: object) -> str:
    body = {
        "job_type": "create",
        "artifact_id": recipe_id,
        "public_key_id": public_key(stack)["id"],
        "image_root_archive_name": "console-e2e",
        **extra,
    }
    created = stack.ims("POST", "/v3/jobs", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _ended(driver: WebDriver, build_ids: list[str]) -> bool:
    rows = {r.get_attribute("data-build-id"): r for r in by_testid(driver, "build-row")}
    return all(
        rows.get(i) is not None and rows[i].get_attribute("data-phase") in ("success", "error")
        for i in build_ids
    )


def _log_size(driver: WebDriver) -> int:
    return int(one(driver, "log").get_attribute("data-size") or 0)


def _phase(driver: WebDriver) -> str:
    return str(driver.find_element(By.ID, "view").get_attribute("data-phase"))


def test_console_follows_a_real_build(
    stack: StackProcess, browser: WebDriver, downloads: Path, tmp_path: Path
) -> None:
    shots = screenshot_dir(tmp_path)
    api, token = stack.info["api_url"], stack.info["tokens"]["user"]
    driver = browser

    # sign in: a bad token is refused with the API's message, the real one is kept
    open_console(driver, api)
    one(driver, "token-input")
    screenshot(driver, shots, "login")
    one(driver, "token-input").send_keys("eyJhbGciOiJub25lIn0.e30.bad")
    one(driver, "sign-in").click()
    assert one(driver, "login-error").text.startswith("Kiln refused this token:")
    recipe_id = upload_example(stack, "minimal")["id"]
    build_id = _start_build(stack, recipe_id, fresh_build=True)  # never from the build cache
    sign_in(driver, api, token)

    # the builds list shows it running (the list refreshes itself)
    running = f'[data-testid="build-row"][data-build-id="{build_id}"][data-phase="running"]'
    wait_for(
        lambda: driver.find_elements(By.CSS_SELECTOR, running),
        timeout=300,
        what="the build running in the builds list",
    )
    row = row_with(driver, "build-row", "data-build-id", build_id)
    assert "console-e2e" in row.text and "IMS" in row.text
    screenshot(driver, shots, "builds-running")

    # its page follows the live log while the build runs
    one(row, "build-link").click()
    wait_for(lambda: driver.find_element(By.ID, "view").get_attribute("data-build-id") == build_id)
    wait_for(
        lambda: one(driver, "log").get_attribute("data-streaming") == "true",
        what="the log followed live",
    )
    sizes = [_log_size(driver)]
    deadline = time.time() + BUILD_TIMEOUT
    shot_taken = False
    walked: set[str] = set()
    while time.time() < deadline and _phase(driver) not in ("success", "error"):
        walked |= set(driver.execute_script(STEPS))
        size = _log_size(driver)
        if size != sizes[-1]:
            sizes.append(size)
        if not shot_taken and len(sizes) >= 3:
            screenshot(driver, shots, "build-live-log")
            shot_taken = True
        time.sleep(0.5)
    assert _phase(driver) == "success", (one(driver, "build-status").text, stack.output())
    assert len(sizes) >= 3 and sizes == sorted(sizes), sizes  # grew, while it ran, in steps
    assert {"creating", "building_image"} <= walked, walked  # its steps, shown as they came
    wait_for(
        lambda: one(driver, "log").get_attribute("data-streaming") == "false",
        what="the log to be final",
    )
    final = _log_size(driver)
    assert final >= sizes[-1] > 0
    shown = driver.execute_script("return document.getElementById('log').textContent.length")
    assert shown > 0.9 * final  # the pane holds the whole log (bytes ≥ characters)
    log_pane = one(driver, "log")
    at_end = driver.execute_script(
        "const p = arguments[0]; return p.scrollHeight - p.scrollTop - p.clientHeight < 30",
        log_pane,
    )
    assert at_end, "the log pane kept scrolled to its end"
    assert "success" in one(driver, "build-status").text

    # its stages, timing and cost
    stages = wait_for(lambda: by_testid(driver, "stage"), what="the stages")
    names = {s.get_attribute("data-stage") for s in stages}
    assert {"queue_wait", "build"} <= names, names
    assert one(driver, "fact-queue-wait").text and one(driver, "fact-cost").text
    assert "miss" in one(driver, "cache").text
    if not shot_taken:
        screenshot(driver, shots, "build-live-log")

    # an artifact, downloaded: the file's SHA-256 is the one shown
    rows = wait_for(lambda: by_testid(driver, "artifact-row"), what="the artifacts")
    smallest = min(rows, key=lambda r: int(r.get_attribute("data-size") or 0))
    name = str(smallest.get_attribute("data-name"))
    expected = one(smallest, "artifact-sha256").get_attribute("data-full")
    assert expected == smallest.get_attribute("data-sha256") and len(str(expected)) == 64
    one(smallest, "artifact-download").click()
    saved = downloaded(downloads, name, timeout=120)
    assert sha256(saved) == expected
    assert by_testid(driver, "provenance") and by_testid(driver, "sbom-cyclonedx-1.6")
    screenshot(driver, shots, "build-artifacts", at=one(driver, "artifacts-card"))

    # Glance: an image uploaded through the API, listed and downloaded
    data = os.urandom(1 << 20)
    headers = {"Authorization": f"Bearer {token}"}
    created = requests.post(
        f"{api}/v2/images",
        json={"name": "console-e2e-disk", "disk_format": "raw", "container_format": "bare"},
        headers=headers,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    image_id = created.json()["id"]
    put = requests.put(
        f"{api}/v2/images/{image_id}/file",
        data=data,
        headers={**headers, "Content-Type": "application/octet-stream"},
        timeout=60,
    )
    assert put.status_code == 204, put.text
    go(driver, "#/images")
    image_row = row_with(driver, "image-row", "data-image-id", image_id)
    assert "console-e2e-disk" in image_row.text and "active" in image_row.text
    screenshot(driver, shots, "images")
    one(image_row, "image-download").click()
    assert downloaded(downloads, "console-e2e-disk.raw").read_bytes() == data

    # the list again, with the same recipe served from the cache and a Cachito request that
    # cannot fetch its repository
    again = _start_build(stack, recipe_id)
    cachito = requests.post(
        f"{api}/api/v1/requests",
        json={"repo": "http://127.0.0.1:9/gone.git", "ref": "0" * 40, "pkg_managers": ["pip"]},
        headers=headers,
        timeout=30,
    )
    assert cachito.status_code == 201, cachito.text
    go(driver, "#/builds")

    def gone() -> str | None:
        rows = by_testid(driver, "build-row")
        found = [r for r in rows if r.get_attribute("data-face") == "cachito" and "gone" in r.text]
        return str(found[0].get_attribute("data-build-id")) if found else None

    failing = wait_for(gone, timeout=60, what="the Cachito request's build")
    wait_for(lambda: _ended(driver, [again, failing]), timeout=300, what="both builds to end")
    hit = row_with(driver, "build-row", "data-build-id", again)
    assert hit.get_attribute("data-phase") == "success" and "hit" in hit.text
    failed = row_with(driver, "build-row", "data-build-id", failing)
    assert failed.get_attribute("data-phase") == "error"
    screenshot(driver, shots, "builds")
    assert severe_console_errors(driver, ("401 (Unauthorized)",)) == []
