"""An SSH session on an image root: a private sshd per job, for customize jobs and debug shells.

The sshd listens on the host's SSH address at a free port of the configured range, with a host
key made for it, accepts the job's public key only, and logs in as root only.

- jail: ``ChrootDirectory`` is the image root, so the user's shell runs inside the image (the
  image needs this host's login shell for root, e.g. /bin/bash); done = ``/tmp/complete``.
- not jailed: a shell on the host, with the image root bind-mounted at /mnt/image in a private
  mount namespace (nothing leaks into the host's mounts); done = ``/mnt/image/complete``.

``close()`` stops the sshd and every process of the session and undoes its mounts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Literal

from builders import sshd_config, workdir
from builders.backends.base import BuildError

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")
STATE_ROOT = Path("/run/kiln-ssh")
MOUNT_POINT = Path("/mnt/image")
_TOOLS = (("ssh-keygen", "openssh-client"), ("unshare", "util-linux"), ("mount", "mount"))
_KEY_TYPES = ("ssh-", "ecdsa-", "sk-")
_START_SECONDS = 10.0

Outcome = Literal["complete", "timeout", "stopped"]


class SessionError(BuildError):
    """The SSH session could not be opened or failed while open."""


def unavailable_reason() -> str | None:
    """None when this host can open SSH sessions; else what is missing."""
    if os.geteuid() != 0:
        return "SSH sessions need the build host agent to run as root"
    if not os.access(SSHD, os.X_OK):
        return f"{SSHD} is not installed (apt-get install openssh-server)"
    for tool, package in _TOOLS:
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {package})"
    return None


@dataclasses.dataclass(frozen=True)
class SshSettings:
    host: str = "127.0.0.1"  # the address sshd binds to, and the one users are given
    ports: tuple[int, int] = (2200, 2299)
    state_root: Path = STATE_ROOT  # config, host key, chroot mount point: root-owned, 0755


class SshSession:
    def __init__(
        self, settings: SshSettings, session_id: str, log: Callable[[str], None] = print
    ) -> None:
        if any(c.isspace() for c in f"{settings.state_root}/{session_id}") or "/" in session_id:
            raise ValueError(f"unusable SSH session id {session_id!r}")
        self.settings = settings
        self.state_dir = settings.state_root / session_id
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None
        self._root: Path | None = None
        self._root_id: tuple[int, int] | None = None
        self._jail = False
        self._chroot: Path | None = None
        self.port: int | None = None
        self._tail: deque[str] = deque(maxlen=20)
        self._listening = threading.Event()

    # -- the session's life ---------------------------------------------------------------
    def start(self, root: Path, jail: bool, public_key: str) -> dict[str, Any]:
        """Serve ``root`` over SSH for the holder of ``public_key``; returns connection info."""
        if self._process is not None:
            raise RuntimeError("the SSH session is already open")
        key_line = _key_line(public_key)
        reason = unavailable_reason()
        if reason:
            raise SessionError(f"this host cannot open SSH sessions: {reason}")
        self._root, self._jail = root.resolve(), jail
        try:
            self._prepare(key_line)
            self.port = self._launch()
        except BaseException:
            self.close()
            raise
        self._log(
            f"I: kiln: SSH session open on {self.settings.host} port {self.port} "
            f"({'jailed in' if jail else 'not jailed, /mnt/image is'} the image root); "
            f"it ends when {'/tmp/complete' if jail else '/mnt/image/complete'} exists"
        )
        return self.connection_info()

    def connection_info(self) -> dict[str, Any]:
        address = {"host": self.settings.host, "port": self.port}
        return {"customer_access": dict(address), "cluster.local": dict(address)}

    @property
    def completion_file(self) -> Path:
        """The file (on the host) whose appearance ends the session."""
        if self._root is None:
            raise RuntimeError("the SSH session was not started")
        return self._root / "tmp" / "complete" if self._jail else self._root / "complete"

    def wait_for_completion(
        self, timeout: float, stop: Callable[[], bool] = lambda: False, poll: float = 0.5
    ) -> Outcome:
        """Until the completion file appears, ``timeout`` seconds pass, or ``stop()``."""
        deadline = time.monotonic() + timeout
        while True:
            if os.path.lexists(self.completion_file):
                return "complete"
            if stop():
                return "stopped"
            if self._process is None or self._process.poll() is not None:
                raise SessionError(f"the SSH server stopped: {self._error_tail()}")
            if time.monotonic() >= deadline:
                return "timeout"
            time.sleep(poll)

    def close(self) -> None:
        """Stop sshd and every session process, undo the mounts, forget the state. Idempotent."""
        process, self._process = self._process, None
        tracked: set[tuple[int, int]] = set()
        if process is not None:
            tracked = _descendants(process.pid)
            _stop(process)
        try:
            self._kill(tracked)
        finally:
            for top in (self._chroot, self._root):
                _unmount_below(top)
            self._chroot = None
            shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- setting up ---------------------------------------------------------------------------
    def _prepare(self, key_line: str) -> None:
        assert self._root is not None
        if not self._root.is_dir():
            raise SessionError(f"the image root {self._root} does not exist")
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        _root_owned_dirs(self.state_dir)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kiln", "-f", self._key])
        keys = self.state_dir / sshd_config.AUTHORIZED_KEYS
        keys.write_text(key_line + "\n")
        keys.chmod(0o600)
        if self._jail:
            self._bind_chroot()
        else:
            MOUNT_POINT.mkdir(parents=True, exist_ok=True)
            sshd_config.write_wrapper(self.state_dir, self._root, MOUNT_POINT)
        with contextlib.suppress(FileNotFoundError):  # a stale signal must not end the session
            self.completion_file.unlink()
        st = os.stat(self._root)
        self._root_id = (st.st_dev, st.st_ino)

    @property
    def _key(self) -> str:
        return str(self.state_dir / sshd_config.HOST_KEY)

    def _bind_chroot(self) -> None:
        """sshd wants every component of ChrootDirectory root-owned and not group/world
        writable: bind the image root below the (root-owned) state dir and chroot there."""
        assert self._root is not None
        st = os.stat(self._root)
        if st.st_uid != 0 or st.st_mode & 0o022:
            self._log(
                f"W: kiln: the image root was owned by {st.st_uid}, mode "
                f"{st.st_mode & 0o7777:o}: made root-owned, not group/world writable"
            )
            os.chown(self._root, 0, st.st_gid)
            os.chmod(self._root, st.st_mode & 0o7755)
        shell = pwd.getpwnam("root").pw_shell or "/bin/sh"
        if not os.path.lexists(f"{self._root}{shell}"):
            self._log(
                f"W: kiln: the image has no {shell} (root's login shell here): only sftp "
                "will work in the jail"
            )
        target = self.state_dir / "root"
        target.mkdir(mode=0o755)
        self._chroot = target
        _run(["mount", "--bind", str(self._root), str(target)])
        _run(["mount", "--make-private", str(target)])

    def _launch(self) -> int:
        low, high = self.settings.ports
        for port in range(low, high + 1):
            if _port_free(self.settings.host, port) and self._spawn(port):
                return port
        raise SessionError(f"no free port for sshd in {low}-{high} on {self.settings.host}")

    def _spawn(self, port: int) -> bool:
        """Start sshd on ``port``; False if the port was taken meanwhile."""
        config = self.state_dir / sshd_config.CONFIG
        chroot = self._chroot if self._jail else None
        config.write_text(
            sshd_config.render_config(self.state_dir, self.settings.host, port, chroot)
        )
        self._listening.clear()
        self._tail.clear()
        process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert process.stderr is not None
        threading.Thread(target=self._pump, args=(process.stderr,), daemon=True).start()
        deadline = time.monotonic() + _START_SECONDS
        while not self._listening.wait(0.05):
            if process.poll() is not None:
                process.wait()
                if any("Address already in use" in line for line in self._tail):
                    return False
                raise SessionError(f"sshd did not start: {self._error_tail()}")
            if time.monotonic() > deadline:
                _stop(process)
                raise SessionError(f"sshd did not listen within {_START_SECONDS:.0f} s")
        self._process = process
        return True

    def _pump(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", errors="replace").rstrip()
            self._tail.append(line)
            if line.startswith("Server listening on"):
                self._listening.set()
            self._log(f"sshd: {line}")

    def _error_tail(self) -> str:
        return " | ".join(list(self._tail)[-4:]) or "no output"

    # -- tearing down -------------------------------------------------------------------------
    def _holds_root(self, pid: str) -> bool:
        """A process whose root is the image root (jailed), or which sees it at /mnt/image."""
        if self._root_id is None:
            return False
        for path in (f"/proc/{pid}/root", f"/proc/{pid}/root{MOUNT_POINT}"):
            try:
                st = os.stat(path)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == self._root_id:
                return True
        return False

    def _kill(self, tracked: set[tuple[int, int]]) -> None:
        """SIGKILL the session's processes (sshd's children, and anything in the jail or the
        session's mount namespace) until none is left."""
        deadline = time.monotonic() + 10
        while True:
            alive = {p for p in tracked if _start_time(p[0]) == p[1]}
            for name in filter(str.isdigit, os.listdir("/proc")):
                started = _start_time(int(name))  # None: gone, or a zombie holding nothing
                if started is not None and int(name) != os.getpid() and self._holds_root(name):
                    alive.add((int(name), started))
            if not alive:
                return
            if time.monotonic() > deadline:
                raise SessionError(f"session processes did not end: {sorted(alive)}")
            for pid, _started in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)


def _key_line(public_key: str) -> str:
    line = (public_key or "").strip()
    if not line or "\n" in line or "\r" in line or not line.startswith(_KEY_TYPES):
        raise SessionError(
            "the job's public key is not one OpenSSH public key line ('<type> <base64> [comment]')"
        )
    return line


def clean_stale(settings: SshSettings) -> None:
    """Stop the sshd servers and undo the mounts a crashed agent left (its state dirs)."""
    if not settings.state_root.is_dir():
        return
    for state in settings.state_root.iterdir():
        with contextlib.suppress(OSError, ValueError):
            pid = int((state / sshd_config.PID_FILE).read_text())
            if str(state) in Path(f"/proc/{pid}/cmdline").read_text():
                os.kill(pid, signal.SIGKILL)
        _unmount_below(state / "root")
        shutil.rmtree(state, ignore_errors=True)


def _unmount_below(top: Path | None) -> None:
    if top is not None:
        workdir.unmount_below(top)


def _root_owned_dirs(path: Path) -> None:
    """Make ``path`` (0700), checking every component is root-owned, not group/world writable."""
    for parent in reversed(path.parents):
        if not parent.exists():
            parent.mkdir(mode=0o755)
            parent.chmod(0o755)
    path.mkdir(mode=0o700)
    for part in [path, *path.parents]:
        st = part.stat()
        if st.st_uid != 0 or st.st_mode & 0o022:
            raise SessionError(f"{part} must be root-owned and not group/world writable for sshd")


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SessionError(f"{command[0]} failed: {(done.stderr or done.stdout).strip()}")


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (state is [0], ppid [1], start time [19])."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _start_time(pid: int) -> int | None:
    """The process's start time (tells a pid from its reuse); None once gone or a zombie."""
    fields = _stat_fields(pid)
    return None if fields is None or fields[0] == "Z" else int(fields[19])


def _descendants(pid: int) -> set[tuple[int, int]]:
    children: dict[int, list[int]] = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        fields = _stat_fields(int(name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(name))
    found: set[tuple[int, int]] = set()
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        started = _start_time(child)
        if started is not None:
            found.add((child, started))
        todo += children.get(child, [])
    return found
