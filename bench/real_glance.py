"""A real OpenStack Glance on this machine, for bench/glance.py to measure Kiln against: glance
33.0.0 under gunicorn (one worker, four threads), images in a file store, its database in
SQLite, no authentication (no keystone in its paste pipeline), all in a temporary directory.

Installed on first use into a cached venv (``.kiln/bench/glance-venv`` by default: python3 -m
venv, then pip with the exact versions below), reused after.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import requests

GLANCE = "glance==33.0.0"
GUNICORN = "gunicorn==27.0.1"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VENV = ROOT / ".kiln" / "bench" / "glance-venv"

CONFIG = """\
[DEFAULT]
enabled_backends = fs:file
bind_host = 127.0.0.1
bind_port = {port}
log_file = {work}/glance-api.log
debug = False
worker_self_reference_url = http://127.0.0.1:{port}
image_size_cap = 8796093022208

[database]
connection = sqlite:///{work}/glance.sqlite

[glance_store]
default_backend = fs

[fs]
filesystem_store_datadir = {work}/images/

[os_glance_staging_store]
filesystem_store_datadir = {work}/staging/

[os_glance_tasks_store]
filesystem_store_datadir = {work}/tasks/

[paste_deploy]
flavor =
config_file = {work}/etc/glance-api-paste.ini

[oslo_policy]
enforce_new_defaults = False
enforce_scope = False

[oslo_concurrency]
lock_path = {work}/lock
"""


@dataclasses.dataclass
class RealGlance:
    url: str
    server: subprocess.Popen[bytes]  # gunicorn's master
    work: Path

    def worker_pids(self) -> list[int]:
        """gunicorn's worker (the process that serves): the master's children."""
        children = Path(f"/proc/{self.server.pid}/task/{self.server.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []


def _installed(venv: Path) -> bool:
    """Whether ``venv`` has exactly the versions pinned above."""
    python = venv / "bin" / "python"
    if not python.exists():
        return False
    versions = subprocess.run(
        [str(python), "-c", VERSIONS], capture_output=True, text=True, check=False
    ).stdout.split()
    return versions == [GLANCE.split("==")[1], GUNICORN.split("==")[1]]


VERSIONS = "import importlib.metadata as m; print(m.version('glance'), m.version('gunicorn'))"


def ensure_venv(venv: Path = DEFAULT_VENV) -> Path:
    """The venv with glance and gunicorn, made (minutes, from PyPI) when missing."""
    if _installed(venv):
        return venv
    print(f"installing {GLANCE} and {GUNICORN} into {venv} (once)...", flush=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", GLANCE, GUNICORN],
        check=True,
        stdout=sys.stderr,
    )
    return venv


def _paste_ini(venv: Path) -> Path:
    """glance-api-paste.ini as pip installed it (the venv's etc/glance)."""
    found = venv / "etc" / "glance" / "glance-api-paste.ini"
    if found.exists():
        return found
    for candidate in venv.rglob("glance-api-paste.ini"):
        return candidate
    raise RuntimeError(f"no glance-api-paste.ini in {venv}")


@contextlib.contextmanager
def running(port: int, venv: Path = DEFAULT_VENV) -> Iterator[RealGlance]:
    """A real Glance serving http://127.0.0.1:<port>, stopped (and its data deleted) after."""
    venv = ensure_venv(venv)
    with tempfile.TemporaryDirectory(prefix="kiln-bench-glance-") as tmp:
        work = Path(tmp)
        etc = work / "etc"
        for folder in (etc, work / "images", work / "staging", work / "tasks", work / "lock"):
            folder.mkdir()
        shutil.copy(_paste_ini(venv), etc / "glance-api-paste.ini")
        conf = etc / "glance-api.conf"
        conf.write_text(CONFIG.format(port=port, work=work), encoding="utf-8")
        env = {**os.environ, "OS_GLANCE_CONFIG_DIR": str(etc)}
        for name in ("AWS_ENDPOINT_URL", "MOTO_PORT"):
            env.pop(name, None)
        subprocess.run(
            [str(venv / "bin" / "glance-manage"), "--config-file", str(conf), "db_sync"],
            env=env,
            check=True,
            capture_output=True,
        )
        log = (work / "gunicorn.log").open("wb")
        server = subprocess.Popen(
            [str(venv / "bin" / "gunicorn"), "-b", f"127.0.0.1:{port}", "-w", "1",
             "--threads", "4", "-k", "gthread", "--timeout", "600",
             "glance.wsgi.api:application"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work,
        )  # fmt: skip
        glance = RealGlance(f"http://127.0.0.1:{port}", server, work)
        try:
            _wait_up(glance)
            yield glance
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            log.close()


def _wait_up(glance: RealGlance, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if glance.server.poll() is not None:
            break
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{glance.url}/v2/images", timeout=5).status_code == 200:
                return
        time.sleep(0.3)
    output = (glance.work / "gunicorn.log").read_text(errors="replace")[-3000:]
    raise RuntimeError(f"Glance did not start:\n{output}")
