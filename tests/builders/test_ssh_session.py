"""A real sshd per session, logged into with paramiko: jailed and not jailed, the wrong key, the
completion signal, and nothing left behind (no sshd, no session process, no mount)."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from builders import workdir
from builders.ssh_session import SessionError, SshSession, SshSettings, unavailable_reason

pytestmark = pytest.mark.skipif(
    unavailable_reason() is not None, reason=f"no SSH sessions here: {unavailable_reason()}"
)

SETTINGS = SshSettings(state_root=Path("/run/kiln-ssh/pytest"))


def make_key(folder: Path, name: str = "id") -> Path:
    """An ed25519 key pair (``folder/name`` and ``.pub``)."""
    path = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def shell_root(root: Path) -> Path:
    """A tiny image root that can run root's login shell and /bin/sh: the binaries and the
    libraries ldd lists, copied from this host."""
    shell = pwd.getpwnam("root").pw_shell or "/bin/sh"
    for program in dict.fromkeys([shell, "/bin/sh"]):
        real = Path(program).resolve()
        listed = subprocess.run(["ldd", str(real)], capture_output=True, text=True).stdout
        libraries = re.findall(r"(/\S+)", listed)
        for source, target in [(str(real), program)] + [(lib, lib) for lib in libraries]:
            destination = root / target.lstrip("/")
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(source).resolve(), destination)
    (root / "tmp").mkdir(exist_ok=True)
    (root / "etc").mkdir(exist_ok=True)
    return root


def connect(info: dict[str, Any], key: Path) -> paramiko.SSHClient:
    address = info["customer_access"]
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(
        address["host"],
        port=address["port"],
        username="root",
        key_filename=str(key),
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    return client


def run(client: paramiko.SSHClient, command: str) -> tuple[int, str]:
    _, stdout, stderr = client.exec_command(command, timeout=20)
    out = stdout.read().decode() + stderr.read().decode()
    return stdout.channel.recv_exit_status(), out


def shell(client: paramiko.SSHClient, line: str, expect: str) -> str:
    """Type ``line`` into an interactive shell; the output once ``expect`` shows."""
    channel = client.invoke_shell()
    channel.send(f"{line}\n".encode())
    seen, deadline = "", time.time() + 10
    while expect not in seen and time.time() < deadline:
        if channel.recv_ready():
            seen += channel.recv(65536).decode(errors="replace")
        time.sleep(0.05)
    channel.close()
    return seen


def assert_nothing_left(session: SshSession, root: Path, port: int) -> None:
    assert not session.state_dir.exists()
    sshd = subprocess.run(["pgrep", "-f", str(session.state_dir)], capture_output=True, text=True)
    assert sshd.stdout.strip() == ""
    assert workdir.mounts_below(root) == [] and workdir.mounts_below(SETTINGS.state_root) == []
    root_id = (os.stat(root).st_dev, os.stat(root).st_ino)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        for path in (f"/proc/{pid}/root", f"/proc/{pid}/root/mnt/image"):
            try:
                st = os.stat(path)
            except OSError:
                continue
            assert (st.st_dev, st.st_ino) != root_id, f"process {pid} still holds the image root"
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


@pytest.fixture
def key(tmp_path: Path) -> Path:
    return make_key(tmp_path)


@pytest.fixture
def session() -> Iterator[SshSession]:
    opened = SshSession(SETTINGS, f"test-{os.getpid()}-{time.monotonic_ns()}", log=lambda _: None)
    yield opened
    opened.close()


def test_not_jailed_session_sees_the_image_at_mnt_image(
    session: SshSession, key: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "motd").write_text("original\n")
    info = session.start(root, jail=False, public_key=key.with_suffix(".pub").read_text())
    assert (
        info["customer_access"]
        == info["cluster.local"]
        == {
            "host": "127.0.0.1",
            "port": session.port,
        }
    )
    client = connect(info, key)
    status, out = run(client, "cat /mnt/image/etc/motd; echo changed > /mnt/image/etc/motd")
    assert (status, out) == (0, "original\n")
    # a process left running in the background must not outlive the session
    assert run(client, "setsid sleep 600 </dev/null >/dev/null 2>&1 &")[0] == 0
    sftp = client.open_sftp()
    assert sorted(sftp.listdir("/mnt/image")) == ["etc"]
    sftp.close()
    assert not os.path.ismount("/mnt/image")  # the bind mount is the session's alone
    assert session.wait_for_completion(0.3) == "timeout"
    assert "shell-1ok" in shell(client, "echo shell-$((1))ok; touch /mnt/image/complete", "-1ok")
    assert session.wait_for_completion(10) == "complete"
    client.close()
    port = session.port
    assert port is not None
    session.close()
    assert (root / "etc" / "motd").read_text() == "changed\n"
    assert (root / "complete").exists()
    assert_nothing_left(session, root, port)


def test_jailed_session_runs_inside_the_image(
    session: SshSession, key: Path, tmp_path: Path
) -> None:
    root = shell_root(tmp_path / "root")
    (root / "etc" / "motd").write_text("original\n")
    info = session.start(root, jail=True, public_key=key.with_suffix(".pub").read_text())
    client = connect(info, key)
    # builtins only: the image has nothing but the shells
    status, out = run(client, "read line < /etc/motd; echo $line; echo jailed > /etc/motd")
    assert (status, out.strip().splitlines()[-1]) == (0, "original")
    sftp = client.open_sftp()
    assert "etc" in sftp.listdir("/") and "root" not in sftp.listdir("/")
    sftp.close()
    shell(client, ": > /tmp/complete; echo done-$((1))", "done-1")
    assert session.wait_for_completion(10) == "complete"
    client.close()
    port = session.port
    assert port is not None
    session.close()
    assert (root / "etc" / "motd").read_text() == "jailed\n"
    assert_nothing_left(session, root, port)


def test_a_wrong_key_is_refused(session: SshSession, key: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    info = session.start(root, jail=False, public_key=key.with_suffix(".pub").read_text())
    other = make_key(tmp_path, "other")
    with pytest.raises(paramiko.AuthenticationException):
        connect(info, other)


def test_stop_ends_the_wait_and_a_stale_signal_is_removed(
    session: SshSession, key: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "complete").write_text("from an earlier session")
    session.start(root, jail=False, public_key=key.with_suffix(".pub").read_text())
    assert not (root / "complete").exists()
    assert session.wait_for_completion(30, stop=lambda: True) == "stopped"


def test_a_key_that_is_not_one_public_key_line_is_refused(
    session: SshSession, tmp_path: Path
) -> None:
    for bad in ("", "not a key", "ssh-ed25519 AAAA x\nssh-rsa AAAA y"):
        with pytest.raises(SessionError, match="public key"):
            session.start(tmp_path, jail=False, public_key=bad)
