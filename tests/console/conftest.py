"""The console in a real headless browser against Kiln served over HTTP in-process
(tests/served.py: the app through the local front, on moto; no build hosts)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.console.browser import chrome, open_console
from tests.served import Served, served_kiln


@pytest.fixture(scope="module")
def served(signing_keys: tuple[bytes, str]) -> Iterator[Served]:
    with served_kiln(signing_keys) as running:
        yield running


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[WebDriver]:
    with chrome(downloads) as driver:
        yield driver


@pytest.fixture
def page(browser: WebDriver, served: Served, downloads: Path) -> WebDriver:
    """The browser on the console, signed out, with an empty download directory."""
    for item in downloads.iterdir():
        shutil.rmtree(item) if item.is_dir() else item.unlink()
    open_console(browser, served.url, "#/login")
    browser.execute_script("sessionStorage.clear(); localStorage.clear();")
    browser.get_log("browser")  # what earlier tests left
    return browser
