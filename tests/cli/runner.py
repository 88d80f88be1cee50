"""`kiln` as a user runs it: the installed console script in a subprocess, with a home directory
of its own (no login, no ~/.ssh) and only the configuration a test gives it; and what its
failures must look like (one `kiln: error:` line, an exit code)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

KILN = Path(sys.executable).parent / "kiln"
#: what the user's environment must not bring in: each test says what it configures
CLEARED = ("KILN_URL", "KILN_TOKEN", "KILN_CONFIG", "KILN_STATE_DIR", "KILN_DEBUG", "COLUMNS")


@dataclasses.dataclass
class Ran:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclasses.dataclass
class KilnCommand:
    """Runs ``kiln`` with HOME at ``home`` and the environment ``env`` on top of the test
    process's (less CLEARED); ``env`` values of None are removed."""

    home: Path
    env: dict[str, str]

    def environment(self, **env: str | None) -> dict[str, str]:
        merged = {k: v for k, v in os.environ.items() if k not in CLEARED}
        merged.update({"HOME": str(self.home), **self.env})
        for name, value in env.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        return merged

    def __call__(
        self, *args: str, cwd: Path | None = None, timeout: float = 120, **env: str | None
    ) -> Ran:
        done = subprocess.run(
            [str(KILN), *args],
            cwd=cwd or self.home,
            env=self.environment(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Ran(done.returncode, done.stdout, done.stderr)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """``kiln`` started, not waited for (``finish`` waits)."""
        return subprocess.Popen(
            [str(KILN), *args],
            cwd=self.home,
            env=self.environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @property
    def config_file(self) -> Path:
        return self.home / ".config" / "kiln" / "config.json"


def finish(process: subprocess.Popen[str], timeout: float = 60) -> Ran:
    stdout, stderr = process.communicate(timeout=timeout)
    return Ran(process.returncode, stdout, stderr)


def assert_fails(ran: Ran, code: int, *fragments: str, alone: bool = True) -> str:
    """``ran`` exited ``code`` with its error as one ``kiln: error:`` line naming every
    fragment, and no traceback; ``alone``: that line is all of stderr (else its last line,
    after a progress display). Returns the line."""
    assert ran.code == code, ran
    assert "Traceback" not in ran.stderr, ran.stderr
    lines = ran.stderr.strip().splitlines()
    if alone:
        assert len(lines) == 1, ran.stderr
    line = lines[-1]
    assert line.startswith("kiln: error: "), ran.stderr
    for fragment in fragments:
        assert fragment in line, line
    return line
