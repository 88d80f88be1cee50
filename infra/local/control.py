"""The local stack's files, ports and moto child: where its state and data live, its pid
file, the ports it needs free, starting and stopping moto, and `make down` / `make reset`
(standard library only, so that both run with the system's python3 before `make up` ever
installed anything).

- state dir: ``KILN_STATE_DIR`` (default ``.kiln`` in the checkout): stack.json, keys, logs,
  ``stack.pid`` while a stack runs;
- data dir: ``KILN_DATA_DIR`` (default ``<state dir>/data``; ``none``: keep nothing, as the
  stack once did): moto's state.db (infra/local/state_store.py) and the objects' files.

Run: python3 -m infra.local.control down|reset
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
PID_FILE = "stack.pid"
#: what ``KILN_DATA_DIR`` says for a stack that keeps nothing (everything in memory)
NO_DATA = "none"


def state_dir_from_env() -> Path:
    return Path(os.environ.get("KILN_STATE_DIR") or ROOT / ".kiln").expanduser().resolve()


def data_dir_from_env(state_dir: Path) -> Path | None:
    """Where the stack keeps its data, or None (``KILN_DATA_DIR=none``): in memory only."""
    value = os.environ.get("KILN_DATA_DIR", "").strip()
    if value.lower() == NO_DATA:
        return None
    return Path(value).expanduser().resolve() if value else state_dir / "data"


def write_pid(state_dir: Path) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / PID_FILE
    partial = path.with_name(f".{PID_FILE}.tmp")
    partial.write_text(f"{os.getpid()}\n", encoding="utf-8")
    partial.replace(path)
    return path


def remove_pid(state_dir: Path) -> None:
    """The pid file, if it is still this process's."""
    path = state_dir / PID_FILE
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text().strip()) == os.getpid():
            path.unlink()


def running_pid(state_dir: Path) -> int | None:
    """The pid of the stack that runs on ``state_dir``, or None (no pid file, or a stale one
    left by a stack that was killed: its process is gone or is another program now)."""
    try:
        pid = int((state_dir / PID_FILE).read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return None
    return pid if b"infra.local.stack" in command and state != "Z" else None


class DataDirInUse(RuntimeError):
    """Another stack keeps its data in the same directory."""


def lock_data_dir(data_dir: Path) -> IO[bytes]:
    """An exclusive lock on the data dir for as long as the returned file stays open (the
    kernel drops it when the process ends, however it ends): two stacks never share one."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / ".lock").open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise DataDirInUse(
            f"another Kiln stack keeps its data in {data_dir}; stop it (make down) or choose "
            "another with KILN_DATA_DIR=<dir>"
        ) from None
    return handle


def start_moto(port: int, state_dir: Path, data_dir: Path | None) -> subprocess.Popen[bytes]:
    """moto server in a process of its own (moto_process.py: index queries read only their
    partition), so AWS work runs on another core than the API. MOTO_PORT: its Step Functions
    call its own SQS there. With a data dir, moto keeps its state there (KILN_DATA_DIR) and
    S3 keeps object bodies in files; without, objects stay in memory (moto spills every
    object over 8 MiB to a temporary file unless its buffer is this large)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MOTO_PORT": str(port)}
    if data_dir is None:
        env.pop("KILN_DATA_DIR", None)
        env["MOTO_S3_DEFAULT_KEY_BUFFER_SIZE"] = str(2**40)
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        env["KILN_DATA_DIR"] = str(data_dir)
        env.pop("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", None)
    log_file = (state_dir / "moto.log").open("ab")
    moto = subprocess.Popen(
        [sys.executable, "-m", "infra.local.moto_process", "-H", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        # out of the terminal's process group: Ctrl-C stops the hosts while moto, stopped
        # last by stop_moto(), still answers them
        start_new_session=True,
    )
    log_file.close()
    deadline = time.time() + 300  # reading a large data dir back takes a while
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/data.json", timeout=5):
                return moto
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if moto.poll() is not None or time.time() > deadline:
                moto.kill()
                raise RuntimeError(
                    f"moto server did not start; see {state_dir / 'moto.log'}"
                ) from None
            time.sleep(0.1)


def stop_moto(moto: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """SIGTERM: moto closes its state store (its last writes checkpointed) and exits."""
    if moto.poll() is not None:
        return
    moto.terminate()
    try:
        moto.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        moto.kill()
        moto.wait()


def down(state_dir: Path, timeout: float = 120) -> int:
    """`make down`: SIGTERM to the running stack, then wait until it has exited."""
    pid = running_pid(state_dir)
    if pid is None:
        print(f"No Kiln stack is running (no live {state_dir / PID_FILE}).")
        return 0
    print(f"Stopping Kiln (pid {pid})...", flush=True)
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + timeout
    while running_pid(state_dir) == pid:
        if time.time() > deadline:
            print(f"Kiln (pid {pid}) did not stop within {timeout:g} s.", file=sys.stderr)
            return 1
        time.sleep(0.2)
    print("Kiln stopped.")
    return 0


def reset(state_dir: Path, data_dir: Path | None, ask: Callable[[str], str] = input) -> int:
    """`make reset`: wipe the data dir, after asking; never under a running stack."""
    if data_dir is None:
        print(f"KILN_DATA_DIR={NO_DATA}: this stack keeps no data; nothing to delete.")
        return 0
    pid = running_pid(state_dir)
    if pid is not None:
        print(f"Kiln is running (pid {pid}); stop it first: make down", file=sys.stderr)
        return 1
    if not data_dir.exists():
        print(f"No local data in {data_dir}; nothing to delete.")
        return 0
    try:
        answer = ask(f"Delete all of Kiln's local data in {data_dir}? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        print("Nothing deleted.")
        return 0
    shutil.rmtree(data_dir)
    print(f"Deleted {data_dir}.")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    state_dir = state_dir_from_env()
    if args == ["down"]:
        return down(state_dir)
    if args == ["reset"]:
        return reset(state_dir, data_dir_from_env(state_dir))
    print("usage: python3 -m infra.local.control down|reset", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())


class PortInUse(RuntimeError):
    """A port the stack needs is taken (often: another `make up` is still running)."""


def require_free(port: int, setting: str) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise PortInUse(
                f"port {port} is in use (is another `make up` running?); "
                f"choose another with {setting}=<port>"
            ) from exc
