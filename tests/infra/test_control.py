"""`make down` and `make reset` (infra/local/control.py), against a stand-in stack process (one
whose command line names infra.local.stack, as `make up`'s does), and the data dir's options."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local import control


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process that looks like a running stack and has written its pid file."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "infra.local.stack"]
    )
    (tmp_path / control.PID_FILE).write_text(f"{process.pid}\n")
    deadline = time.time() + 10
    while b"infra.local.stack" not in Path(f"/proc/{process.pid}/cmdline").read_bytes():
        assert time.time() < deadline, "the stand-in never ran"
        time.sleep(0.01)  # forked, not yet exec'd: still this process's command line
    yield process
    process.kill()
    process.wait()


def test_down_stops_the_running_stack_and_waits_for_it(
    tmp_path: Path, stand_in: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    assert control.running_pid(tmp_path) == stand_in.pid
    assert control.down(tmp_path, timeout=10) == 0
    assert stand_in.wait(timeout=5) == -15  # SIGTERM
    assert f"Stopping Kiln (pid {stand_in.pid})" in capsys.readouterr().out
    assert control.running_pid(tmp_path) is None
    assert control.down(tmp_path) == 0
    assert "No Kiln stack is running" in capsys.readouterr().out


def test_a_stale_pid_file_is_no_running_stack(tmp_path: Path) -> None:
    (tmp_path / control.PID_FILE).write_text(f"{os.getpid()}\n")  # alive, but not a stack
    assert control.running_pid(tmp_path) is None
    (tmp_path / control.PID_FILE).write_text("not a pid\n")
    assert control.running_pid(tmp_path) is None


def test_reset_asks_and_deletes_only_on_yes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "s3").mkdir(parents=True)
    (data / "state.db").write_bytes(b"x")
    questions: list[str] = []

    def answer(reply: str) -> object:
        def ask(question: str) -> str:
            questions.append(question)
            return reply

        return ask

    assert control.reset(tmp_path, data, answer("")) == 0  # the default is no
    assert control.reset(tmp_path, data, answer("n")) == 0
    assert (data / "state.db").exists()
    assert questions == [f"Delete all of Kiln's local data in {data}? [y/N] "] * 2
    assert control.reset(tmp_path, data, answer("y")) == 0
    assert not data.exists()
    assert control.reset(tmp_path, data, answer("y")) == 0  # nothing left: not even asked
    assert len(questions) == 3


def test_reset_refuses_while_the_stack_runs(
    tmp_path: Path, stand_in: subprocess.Popen[bytes]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    assert control.reset(tmp_path, data, lambda _: "y") == 1
    assert data.exists()


def test_the_data_dir_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KILN_DATA_DIR", raising=False)
    assert control.data_dir_from_env(tmp_path) == tmp_path / "data"
    monkeypatch.setenv("KILN_DATA_DIR", str(tmp_path / "elsewhere"))
    assert control.data_dir_from_env(tmp_path) == tmp_path / "elsewhere"
    monkeypatch.setenv("KILN_DATA_DIR", "none")
    assert control.data_dir_from_env(tmp_path) is None


def test_one_stack_per_data_dir(tmp_path: Path) -> None:
    held = control.lock_data_dir(tmp_path / "data")
    with pytest.raises(control.DataDirInUse, match="another Kiln stack keeps its data"):
        control.lock_data_dir(tmp_path / "data")  # another open file: as another stack's
    held.close()
    control.lock_data_dir(tmp_path / "data").close()  # free again
