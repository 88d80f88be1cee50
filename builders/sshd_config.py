"""What a session's private sshd runs from (ssh_session.py): its config and the login wrapper.

Everything is in the session's state dir: the config names the host key, pid file and
authorized_keys there and, for a session that is not jailed, the wrapper (``session.sh``) that
every login goes through.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")
# the files in a session's state dir
CONFIG = "sshd_config"
HOST_KEY = "host_key"
AUTHORIZED_KEYS = "authorized_keys"
PID_FILE = "sshd.pid"
WRAPPER = "session.sh"

_FIXED_OPTIONS = (
    "AuthenticationMethods publickey,PubkeyAuthentication yes,PasswordAuthentication no,"
    "KbdInteractiveAuthentication no,HostbasedAuthentication no,UsePAM no,"
    "PermitRootLogin prohibit-password,AllowUsers root,StrictModes yes,"
    "PermitUserEnvironment no,AllowTcpForwarding no,AllowAgentForwarding no,"
    "AllowStreamLocalForwarding no,X11Forwarding no,PermitTunnel no,PrintMotd no,"
    "PrintLastLog no,UseDNS no,ClientAliveInterval 30,ClientAliveCountMax 4,LogLevel INFO"
)

# Runs through root's login shell (sshd's ForceCommand): a private mount namespace, the image
# root bind-mounted at /mnt/image, then the client's command (ssh host 'cmd', scp, sftp) or a
# login shell.
_WRAPPER_SCRIPT = """#!/bin/sh
exec {unshare} --mount --propagation private -- /bin/sh -c '
{mount} --bind "$1" "$2" || exit 1
shell="${{SHELL:-/bin/sh}}"
if [ -n "${{SSH_ORIGINAL_COMMAND:-}}" ]; then exec "$shell" -c "$SSH_ORIGINAL_COMMAND"; fi
exec "$shell" -l
' kiln-session {root} {point}
"""


def render_config(state_dir: Path, host: str, port: int, chroot: Path | None) -> str:
    """sshd_config listening on ``host``:``port``: jailed in ``chroot`` if given, else every
    login runs the wrapper (write_wrapper)."""
    lines = [
        f"ListenAddress {f'[{host}]' if ':' in host else host}:{port}",
        f"HostKey {state_dir / HOST_KEY}",
        f"PidFile {state_dir / PID_FILE}",
        f"AuthorizedKeysFile {state_dir / AUTHORIZED_KEYS}",
        *_FIXED_OPTIONS.split(","),
    ]
    if chroot is not None:
        lines += [f"ChrootDirectory {chroot}", "Subsystem sftp internal-sftp"]
    else:
        lines.append(f"ForceCommand {state_dir / WRAPPER}")
        if SFTP_SERVER.exists():
            lines.append(f"Subsystem sftp {SFTP_SERVER}")
    return "\n".join(lines) + "\n"


def write_wrapper(state_dir: Path, root: Path, point: Path) -> None:
    """The login wrapper of a session that is not jailed: ``root`` is bind-mounted at ``point``."""
    wrapper = state_dir / WRAPPER
    wrapper.write_text(
        _WRAPPER_SCRIPT.format(
            unshare=shutil.which("unshare"),
            mount=shutil.which("mount"),
            root=shlex.quote(str(root)),
            point=shlex.quote(str(point)),
        )
    )
    wrapper.chmod(0o755)
