"""Local git repositories served over smart HTTP on loopback (``git http-backend``), the way a
Cachito request fetches from a real git host.

    with GitServer(tmp_path) as git:
        url, commit = git.repo("app", {"requirements.txt": "six==1.16.0\n"})
        url2, commit2 = git.repo("app", {...})   # a new commit on the same repository
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Kiln Tests",
    "GIT_AUTHOR_EMAIL": "tests@kiln.invalid",
    "GIT_COMMITTER_NAME": "Kiln Tests",
    "GIT_COMMITTER_EMAIL": "tests@kiln.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+00:00",
}


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    done = subprocess.run(
        ["git", "-c", "protocol.file.allow=always", *args],
        cwd=cwd,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


class _Handler(http.server.BaseHTTPRequestHandler):
    root: Path
    delay: float = 0.0  # seconds before each answer: a slow git host

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._backend()

    def do_POST(self) -> None:
        self._backend()

    def _backend(self) -> None:
        time.sleep(self.delay)
        path, _, query = self.path.partition("?")
        env = {
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "REMOTE_ADDR": "127.0.0.1",
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_CONFIG_GLOBAL": "/dev/null",
        }
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding") == "gzip":
            env["HTTP_CONTENT_ENCODING"] = "gzip"
        done = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
        )
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class GitServer:
    def __init__(self, root: Path, delay: float = 0.0) -> None:
        self.root = root / "git-served"
        self.root.mkdir(parents=True, exist_ok=True)
        self._work = root / "git-work"
        handler = type("Handler", (_Handler,), {"root": self.root, "delay": delay})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> GitServer:
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}.git"

    def repo(
        self,
        name: str,
        files: dict[str, str | bytes],
        *,
        symlinks: dict[str, str] | None = None,
        submodules: dict[str, tuple[str, str]] | None = None,
        replace: bool = True,
    ) -> tuple[str, str]:
        """Commit ``files`` (path -> content; ``replace``: the tree holds only these) to the
        repository ``name``; ``symlinks`` path -> target, ``submodules`` path -> (url,
        commit). Returns the repository's URL and the new commit."""
        work = self._work / name
        bare = self.root / f"{name}.git"
        if not bare.exists():
            work.mkdir(parents=True)
            git(work, "init", "-q", "-b", "main")
            git(self.root, "init", "-q", "--bare", "-b", "main", bare.name)
            git(bare, "config", "http.receivepack", "true")
            git(bare, "config", "uploadpack.allowAnySHA1InWant", "true")
            git(work, "remote", "add", "origin", str(bare))
        elif replace:
            for entry in work.iterdir():
                if entry.name == ".git":
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        for path, content in files.items():
            target = work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        for path, destination in (symlinks or {}).items():
            target = work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(destination)
        git(work, "add", "-A")
        for path, (url, commit) in (submodules or {}).items():
            git(work, "submodule", "add", "-q", url, path)
            git(work / path, "checkout", "-q", commit)
            git(work, "add", path)
        git(work, "commit", "-q", "--allow-empty", "-m", f"commit of {name}")
        git(work, "push", "-q", "origin", "main")
        git(bare, "update-server-info")
        return self.url(name), git(work, "rev-parse", "HEAD")
