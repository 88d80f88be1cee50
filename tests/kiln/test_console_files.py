"""The web console's files as Kiln serves them (chalicelib/faces/kiln/console.py), over HTTP
through the local front as `make up` serves them, and as Chalice routes behind API Gateway."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.served import Served, served_kiln

FILES = Path(__file__).resolve().parents[2] / "chalicelib" / "console"


@pytest.fixture(scope="module")
def served(signing_keys: tuple[bytes, str]) -> Iterator[Served]:
    with served_kiln(signing_keys) as running:
        yield running


def fetch(served: Served, path: str) -> requests.Response:
    return requests.get(served.url + path, timeout=10, allow_redirects=False)


@pytest.mark.parametrize("path", ["/console", "/console/", "/console/index.html"])
def test_the_page_names_its_own_path_as_its_base(served: Served, path: str) -> None:
    answer = fetch(served, path)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
    assert '<base href="/console/">' in answer.text
    assert answer.text.count("<base ") == 1
    policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_every_console_file_is_served_with_its_type(served: Served) -> None:
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    names = [p.name for p in FILES.iterdir() if p.suffix in types]
    assert any(n.endswith(".js") for n in names) and any(n.endswith(".css") for n in names)
    for name in names:
        answer = fetch(served, f"/console/{name}")
        assert answer.status_code == 200, name
        assert answer.headers["Content-Type"].startswith(types[Path(name).suffix])
        assert answer.content == (FILES / name).read_bytes()


def test_the_page_loads_only_files_the_console_has(served: Served) -> None:
    """Every script and stylesheet the page names is one of its files: nothing from elsewhere."""
    page = fetch(served, "/console/").text
    named = re.findall(r'(?:src|href)="([^"#]+)"', page)
    assert named
    for link in named:
        if link == "/console/":  # the base
            continue
        assert not link.startswith(("http:", "https:", "//")), link
        assert (FILES / link.removeprefix("./")).is_file(), link


@pytest.mark.parametrize(
    "name", ["nope.js", "..%2Fapp.py", ".hidden.js", "index.py", "console.js%00.html", "a" * 120]
)
def test_anything_else_is_404(served: Served, name: str) -> None:
    answer = fetch(served, f"/console/{name}")
    assert answer.status_code in (403, 404), name
    assert "import" not in answer.text  # no source file leaks
