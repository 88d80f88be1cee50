"""Fast tests of the kiln-debian mirror choice and the wait for it (network: localhost only)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from builders.backends import debian_mirror as mirrors
from builders.backends import debian_recipe as recipes
from builders.backends.base import BuildError
from builders.backends.debian import DebianBackend
from tests.builders.helpers import context, load, write_recipe


def test_mirror_resolution_order(tmp_path: Path) -> None:
    etc_apt = tmp_path / "apt"
    (etc_apt / "sources.list.d").mkdir(parents=True)
    (etc_apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb deb-src\nURIs: http://host.example/debian\nSuites: bookworm\n"
    )
    without_mirror = load(tmp_path, "suite: bookworm\n")
    with_mirror = recipes.parse_recipe("suite: bookworm\nmirror: http://r.example/d/\n", tmp_path)
    env = {mirrors.MIRROR_ENV: "http://env.example/debian"}
    assert mirrors.resolve_mirror(with_mirror, env, etc_apt) == "http://r.example/d"
    assert mirrors.resolve_mirror(without_mirror, env, etc_apt) == "http://env.example/debian"
    assert mirrors.resolve_mirror(without_mirror, {}, etc_apt) == "http://host.example/debian"
    with pytest.raises(BuildError, match="no Debian package mirror is configured"):
        mirrors.resolve_mirror(without_mirror, {}, tmp_path / "none")


def test_host_mirror_from_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\n"
    )
    assert mirrors.host_apt_mirror(tmp_path) == "http://one.example/debian"


class _ReleaseHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path == "/debian/dists/bookworm/Release":
            body = b"Suite: stable\nArchitectures: amd64 arm64\nComponents: main contrib\n"
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def release_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ReleaseHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/debian"
    server.shutdown()
    server.server_close()


def _wait(tmp_path: Path, text: str, arch: str = "x86_64", wait: float = 5.0) -> None:
    recipe_dir = write_recipe(tmp_path / "recipe", text)
    DebianBackend(repo_wait_seconds=wait).wait_for_repos(context(tmp_path, recipe_dir, arch=arch))


def test_wait_for_repos_ok(tmp_path: Path, release_server: str) -> None:
    _wait(tmp_path, f"suite: bookworm\nmirror: {release_server}\n")


def test_wait_for_repos_unknown_suite_fails_at_once(tmp_path: Path, release_server: str) -> None:
    with pytest.raises(BuildError, match="suite 'bookwurm' does not exist on package mirror"):
        _wait(tmp_path, f"suite: bookwurm\nmirror: {release_server}\n", wait=60)


def test_wait_for_repos_checks_components(tmp_path: Path, release_server: str) -> None:
    with pytest.raises(BuildError, match="component\\(s\\) non-free not in suite bookworm"):
        _wait(tmp_path, f"suite: bookworm\nmirror: {release_server}\ncomponents: [non-free]\n")


def test_wait_for_repos_gives_up_on_a_dead_mirror(tmp_path: Path, release_server: str) -> None:
    dead = release_server.rsplit(":", 1)[0] + ":9/debian"  # discard port: nothing listens
    with pytest.raises(BuildError, match=f"package mirror {dead} did not answer for suite"):
        _wait(tmp_path, f"suite: bookworm\nmirror: {dead}\n", wait=1)
