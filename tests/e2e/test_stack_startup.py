from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, free_port


def test_a_taken_port_is_refused_with_the_setting_to_change(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            **os.environ,
            "KILN_API_PORT": str(port),
            "KILN_AWS_PORT": str(free_port()),
            "KILN_STATE_DIR": str(tmp_path),
        }
        done = subprocess.run(
            [sys.executable, "-m", "infra.local.stack"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert f"port {port} is in use" in done.stderr and "KILN_API_PORT" in done.stderr
    assert not (tmp_path / "stack.json").exists()
