"""The console's pages in a real browser against Kiln over HTTP (no build hosts): signing in
and out, the API's own error message on a bad token or a missing record, empty states, a
queued build in the list and on its page, Glance images listed, shown and downloaded with the
token, Cachito requests with their state, and OMPS releases of an organization."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from tests.console.browser import (
    by_testid,
    downloaded,
    go,
    one,
    open_console,
    row_with,
    screenshot,
    screenshot_dir,
    severe_console_errors,
    sign_in,
    wait_for,
)
from tests.omps.cnr_helpers import flat_blob
from tests.served import Served

#: console errors a test causes on purpose: the browser logs every 4xx answer it fetched
EXPECTED = ("401 (Unauthorized)", "404 (Not Found)")


def _view(driver: WebDriver) -> str:
    return str(driver.find_element(By.ID, "view").get_attribute("data-view"))


def _upload_image(served: Served, name: str, data: bytes, **properties: str) -> dict:
    body = {"name": name, "disk_format": "raw", "container_format": "bare", **properties}
    created = served.call("POST", "/v2/images", body)
    assert created.status_code == 201, created.text
    image = created.json()
    stored = served.call(
        "PUT", f"/v2/images/{image['id']}/file", data, content_type="application/octet-stream"
    )
    assert stored.status_code == 204, stored.text
    return dict(served.call("GET", f"/v2/images/{image['id']}").json())


def test_sign_in_refuses_a_bad_token_then_signs_in_and_out(
    page: WebDriver, served: Served, tmp_path: Path
) -> None:
    open_console(page, served.url)
    wait_for(lambda: _view(page) == "login", what="the sign-in page")
    assert not [e for e in by_testid(page, "nav-builds") if e.is_displayed()]
    one(page, "token-input").send_keys("not.a.token")
    one(page, "sign-in").click()
    error = one(page, "login-error").text
    assert error.startswith("Kiln refused this token:"), error
    assert len(error) > len("Kiln refused this token: ") + 3  # the API's own detail follows
    assert _view(page) == "login"
    assert page.execute_script("return sessionStorage.length + localStorage.length") == 0
    screenshot(page, screenshot_dir(tmp_path), "login-fast")

    sign_in(page, served.url, served.kiln.token("demo", "user"))
    assert one(page, "user-chip").text == "demo · user"
    assert one(page, "nav-builds").get_attribute("aria-current") == "page"
    assert "No builds yet" in one(page, "empty-state").text
    stored = page.execute_script("return sessionStorage.getItem('kiln.console.token')")
    assert stored == served.kiln.token("demo", "user") or stored.count(".") == 2
    page.refresh()  # the token survives a reload of the tab
    wait_for(lambda: _view(page) == "builds", what="the builds list after a reload")

    one(page, "sign-out").click()
    wait_for(lambda: _view(page) == "login", what="the sign-in page after signing out")
    assert page.execute_script("return sessionStorage.length + localStorage.length") == 0
    go(page, "#/images")
    wait_for(lambda: _view(page) == "login", what="a signed-out visit sent to sign in")
    assert severe_console_errors(page, EXPECTED) == []


def test_a_token_the_api_later_refuses_signs_the_console_out(
    page: WebDriver, served: Served
) -> None:
    sign_in(page, served.url, served.kiln.token())
    forged = served.kiln.token().rsplit(".", 1)[0] + ".AAAA"
    page.execute_script("sessionStorage.setItem('kiln.console.token', arguments[0])", forged)
    go(page, "#/images")
    notice = one(page, "login-notice").text
    assert notice.startswith("Kiln refused the token:"), notice


def test_queued_build_in_the_list_and_on_its_page(
    page: WebDriver, served: Served, tmp_path: Path
) -> None:
    """A Cachito request makes a build; with no build host it stays queued."""
    body = {
        "repo": "https://git.example.invalid/demo.git",
        "ref": "a" * 40,
        "pkg_managers": ["pip"],
    }
    created = served.call("POST", "/api/v1/requests", body)
    assert created.status_code == 201, created.text
    sign_in(page, served.url, served.kiln.token())
    row = one(page, "build-row")
    assert row.get_attribute("data-phase") == "queued"
    assert "Cachito" in row.text and "creating" in row.text
    build_id = row.get_attribute("data-build-id")
    screenshot(page, screenshot_dir(tmp_path), "builds-fast")

    Select(one(page, "filter-face")).select_by_value("ims")
    assert "No builds match these filters" in one(page, "empty-state").text
    assert "face=ims" in page.current_url
    Select(one(page, "filter-face")).select_by_value("cachito")
    one(page, "build-row")

    one(page, "build-link").click()
    wait_for(lambda: page.find_element(By.ID, "view").get_attribute("data-build-id") == build_id)
    assert build_id in one(page, "build-id").text
    assert "creating" in one(page, "build-status").text
    (step,) = by_testid(page, "step")  # while it runs: its steps so far, not yet its stages
    assert step.get_attribute("data-status") == "creating" and "step-current" in step.get_attribute(
        "class"
    )
    assert one(page, "artifacts-empty").is_displayed()
    assert one(page, "cancel-build").is_displayed()
    wait_for(lambda: one(page, "log").get_attribute("data-streaming") == "true")
    assert one(page, "log-placeholder").text.startswith("Waiting for the build")
    screenshot(page, screenshot_dir(tmp_path), "build-fast")

    go(page, "#/sources")
    source = one(page, "source-row")
    assert source.get_attribute("data-state") == "in_progress"
    assert one(page, "source-reason").text  # Cachito's state_reason
    assert not one(page, "bundle-download").is_enabled()
    screenshot(page, screenshot_dir(tmp_path), "sources-fast")
    assert severe_console_errors(page, EXPECTED) == []


def test_an_unknown_build_shows_the_api_message(page: WebDriver, served: Served) -> None:
    sign_in(page, served.url, served.kiln.token())
    go(page, "#/builds/no-such-build")
    assert "build no-such-build not found" in one(page, "error-banner").text
    go(page, "#/images/00000000-0000-0000-0000-000000000000")
    assert one(page, "error-banner").text  # Glance's message


def test_images_listed_shown_and_downloaded(
    page: WebDriver, served: Served, downloads: Path, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    image = _upload_image(served, "console-disk", data, os_distro="debian")
    assert image["os_hash_value"] == hashlib.sha512(data).hexdigest()
    sign_in(page, served.url, served.kiln.token())
    one(page, "nav-images").click()
    row = row_with(page, "image-row", "data-image-id", image["id"])
    assert "console-disk" in row.text and "active" in row.text and "293 KiB" in row.text
    shown = one(row, "image-hash").get_attribute("data-full")
    assert shown == image["os_hash_value"]
    screenshot(page, screenshot_dir(tmp_path), "images-fast")

    one(row, "image-download").click()
    saved = downloaded(downloads, "console-disk.raw")
    assert saved.read_bytes() == data

    one(row, "image-link").click()
    assert "console-disk" in one(page, "image-title").text
    props = one(page, "image-properties").text
    assert "os_distro" in props and "debian" in props
    assert one(page, "image-os-hash").get_attribute("data-full") == image["os_hash_value"]
    assert one(page, "image-checksum").get_attribute("data-full") == hashlib.md5(data).hexdigest()
    assert "300,000 bytes" in one(page, "image-size").text.replace("\u202f", ",")


def test_empty_images_sources_and_operators(page: WebDriver, served: Served) -> None:
    sign_in(page, served.url, served.kiln.token("empty-tenant"))
    go(page, "#/images")
    assert "No images" in one(page, "empty-state").text
    go(page, "#/sources")
    assert "No Cachito requests yet" in one(page, "empty-state").text
    go(page, "#/operators")
    assert "Choose an organization" in one(page, "operators-empty").text
    one(page, "org-input").send_keys("nobody-here")
    one(page, "org-show").click()
    wait_for(lambda: "No operators in nobody-here" in one(page, "operators-empty").text)
    assert "org=nobody-here" in page.current_url


def test_operator_releases_listed_and_downloaded(
    page: WebDriver, served: Served, downloads: Path, tmp_path: Path
) -> None:
    blob = flat_blob("console-op")
    body = {"blob": base64.b64encode(blob).decode(), "release": "1.0.0", "media_type": "helm"}
    pushed = served.call("POST", "/cnr/api/v1/packages/console-org/console-op", body)
    assert pushed.status_code == 200, pushed.text
    sign_in(page, served.url, served.kiln.token())
    go(page, "#/operators?org=console-org")
    row = one(page, "operator-row")
    assert row.get_attribute("data-name") == "console-org/console-op"
    assert one(row, "operator-default").text == "1.0.0"
    one(row, "operator-link").click()
    release = one(page, "release-row")
    assert release.get_attribute("data-release") == "1.0.0"
    assert one(release, "release-digest").get_attribute("data-full") == (
        hashlib.sha256(blob).hexdigest()
    )
    screenshot(page, screenshot_dir(tmp_path), "operator-fast")
    one(release, "release-download").click()
    saved = downloaded(downloads)
    assert saved.name.endswith(".tar.gz") and saved.read_bytes() == blob


def test_console_without_its_slash_and_on_a_narrow_screen(
    page: WebDriver, served: Served, tmp_path: Path
) -> None:
    """/console (as API Gateway passes /console/) and a phone-sized window: the same page, its
    links in-page, nothing wider than the screen."""
    page.get(f"{served.url}/console")
    wait_for(lambda: _view(page) == "login", what="the sign-in page at /console")
    assert page.execute_script("return location.pathname") == "/console/"
    sign_in(page, served.url, served.kiln.token())
    page.execute_script("window.kilnMarker = 1")  # gone if a link reloaded the page
    one(page, "nav-sources").click()
    wait_for(lambda: _view(page) == "sources", what="the sources page")
    assert page.execute_script("return window.kilnMarker") == 1
    page.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 420, "height": 860, "deviceScaleFactor": 1, "mobile": True},
    )
    try:
        for route in ("#/builds", "#/images", "#/sources", "#/operators"):
            go(page, route)
            wait_for(lambda: by_testid(page, "nav-builds")[0].is_displayed())
            width = page.execute_script("return document.documentElement.scrollWidth")
            assert width <= 421, (route, width)
        screenshot(page, screenshot_dir(tmp_path), "narrow-fast")
    finally:
        page.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1400, "height": 900, "deviceScaleFactor": 1, "mobile": False},
        )
