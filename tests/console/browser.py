"""A real headless browser for the console's tests: Debian's chromium driven through its
chromedriver (both from apt, `make browser-deps`), never anything Selenium Manager would
download; downloads land in a directory the test names. Used by tests/console/ and
tests/e2e/test_console.py."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
T = TypeVar("T")


@contextlib.contextmanager
def chrome(downloads: Path) -> Iterator[WebDriver]:
    """A headless Chromium (1400x900) whose downloads go to ``downloads``."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a browser or driver
    downloads.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,900",
        "--disable-gpu",
        "--no-first-run",
        "--disable-features=DownloadBubble,DownloadBubbleV2",
    ):
        options.add_argument(arg)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "download.directory_upgrade": True,
            "safebrowsing.enabled": False,
        },
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior",
            {"behavior": "allow", "downloadPath": str(downloads), "eventsEnabled": True},
        )
        # the page itself 1400x900, whatever the window's frame takes
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1400, "height": 900, "deviceScaleFactor": 1, "mobile": False},
        )
        yield driver
    finally:
        driver.quit()


def wait_for(check: Callable[[], T], timeout: float = 15, what: str = "the page") -> T:
    """Polls ``check`` until it returns something true; AssertionError after ``timeout``."""
    deadline = time.time() + timeout
    last: Exception | None = None
    while time.time() < deadline:
        try:
            found = check()
            if found:
                return found
        except (WebDriverException, StaleElementReferenceException, LookupError) as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{what} never came within {timeout}s (last error: {last})")


def by_testid(driver: WebDriver | WebElement, testid: str) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, f'[data-testid="{testid}"]')


def row_with(
    driver: WebDriver | WebElement, testid: str, attribute: str, value: str, timeout: float = 15
) -> WebElement:
    """The element with this data-testid whose ``attribute`` is ``value``, waited for."""

    def found() -> WebElement | None:
        rows = by_testid(driver, testid)
        return next((r for r in rows if r.get_attribute(attribute) == value), None)

    return wait_for(found, timeout, f"[data-testid={testid}][{attribute}={value}]")


def one(driver: WebDriver | WebElement, testid: str, timeout: float = 15) -> WebElement:
    """The first visible element with this data-testid, waited for."""

    def visible() -> WebElement | None:
        return next((e for e in by_testid(driver, testid) if e.is_displayed()), None)

    return wait_for(visible, timeout, f"[data-testid={testid}]")


def open_console(driver: WebDriver, api_url: str, route: str = "") -> None:
    driver.get(f"{api_url}/console/{route}")


def sign_in(driver: WebDriver, api_url: str, token: str) -> None:
    """Paste the token on the sign-in page and wait for the builds list."""
    open_console(driver, api_url, "#/login")
    box = one(driver, "token-input")
    box.clear()
    box.send_keys(token)
    one(driver, "sign-in").click()
    wait_for(lambda: driver.find_element(By.ID, "view").get_attribute("data-view") == "builds")
    one(driver, "user-chip")


def go(driver: WebDriver, route: str) -> None:
    """Follows an in-page route (the hash), as a click on a nav link would."""
    driver.execute_script("window.location.hash = arguments[0]", route)


def text_of(driver: WebDriver | WebElement, testid: str) -> str:
    return one(driver, testid).text


def screenshot(driver: WebDriver, directory: Path, name: str, at: WebElement | None = None) -> Path:
    """``console-<name>.png`` in ``directory`` (KILN_SCREENSHOT_DIR when set): the page's top,
    or scrolled to show ``at``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"console-{name}.png"
    if at is None:
        driver.execute_script("window.scrollTo(0, 0)")
    else:
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", at)
    assert driver.save_screenshot(str(path)), path
    return path


def screenshot_dir(default: Path) -> Path:
    named = os.environ.get("KILN_SCREENSHOT_DIR")
    return Path(named).resolve() if named else default


def downloaded(directory: Path, name: str | None = None, timeout: float = 60) -> Path:
    """The file the browser finished downloading into ``directory`` (the named one, or the only
    one), once no partial download is left."""

    def done() -> Path | None:
        files = [p for p in directory.iterdir() if p.is_file()]
        if any(p.suffix == ".crdownload" or p.name.startswith(".com.google") for p in files):
            return None
        wanted = [p for p in files if name is None or p.name == name]
        return wanted[0] if len(wanted) == 1 and wanted[0].stat().st_size >= 0 else None

    return wait_for(done, timeout, f"the download of {name or 'a file'} in {directory}")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def severe_console_errors(driver: WebDriver, ignore: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Browser console errors (script errors, failed loads) the page raised, bar those whose
    message has one of ``ignore`` (e.g. the 401/404 answers a test provoked on purpose)."""
    entries = driver.get_log("browser")
    return [
        e
        for e in entries
        if e.get("level") == "SEVERE" and not any(text in e.get("message", "") for text in ignore)
    ]
