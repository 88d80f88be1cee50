"""Cachito requests on the real local stack (the one `make up` runs): a project with 24 pip and
100+ npm dependencies served from a loopback git server, fetched from the real PyPI and npm
registries.

Prints one table: Kiln's request time (POST to complete, as a client waits for it) against the
raw tools on the same host fetching the same dependencies (`pip download` of the sdists,
`npm ci --ignore-scripts` with an empty cache); the same request again, from another tenant
(its outputs reused whole from the cache; goal: at most 10% of the first request's time); the
project at a new commit (the source fetched, every dependency from the dependency cache); and
the bundle download rate through the API, Digest checked. Exits 1 if the cache goal is missed.
Run: make bench  (or .venv/bin/python bench/cachito.py)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.stack_harness import free_port  # noqa: E402
from infra.local.process import StackProcess  # noqa: E402
from infra.local.tokens import mint  # noqa: E402
from tests.cachito.atomic_client import CachitoAPI  # noqa: E402
from tests.cachito.git_server import GitServer  # noqa: E402
from tests.cachito.lockfiles import npm_lockfile  # noqa: E402

#: pinned sdists (with what building them offline needs), as a real requirements.txt has them
PIP_REQUIREMENTS = """\
six==1.16.0
toml==0.10.2
idna==3.7
certifi==2024.7.4
charset-normalizer==3.3.2
urllib3==2.2.2
requests==2.32.3
attrs==23.2.0
packaging==24.1
pyparsing==3.1.2
click==8.1.7
itsdangerous==2.2.0
MarkupSafe==2.1.5
Jinja2==3.1.4
Werkzeug==3.0.3
Flask==3.0.3
python-dateutil==2.9.0.post0
pytz==2024.1
wrapt==1.16.0
decorator==5.1.1
colorama==0.4.6
tabulate==0.9.0
simplejson==3.19.2
blinker==1.8.2
"""
PACKAGE_JSON = {
    "name": "bench-web",
    "version": "1.0.0",
    "dependencies": {"express": "4.19.2", "lodash": "4.17.21", "chalk": "4.1.2"},
    "devDependencies": {"eslint": "8.57.0"},
}
GOAL = 0.10


def timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.monotonic() - started


def request_seconds(api: CachitoAPI, repo: str, ref: str) -> tuple[float, dict]:
    started = time.monotonic()
    created = api.request_sources(repo, ref, pkg_managers=["pip", "npm"])
    done = api.wait_for_request(created["id"], burst_retry=0.2, slow_retry=0.5, timeout=1800)
    return time.monotonic() - started, done


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="kiln-bench-cachito-") as temp:
        work = Path(temp)
        lock = npm_lockfile(work, PACKAGE_JSON)
        npm_count = len([k for k in json.loads(lock)["packages"] if k])
        files = {
            "requirements.txt": PIP_REQUIREMENTS,
            "requirements-build.txt": "setuptools==75.3.0\nwheel==0.45.1\nflit-core==3.9.0\n",
            "pyproject.toml": '[project]\nname = "bench-app"\nversion = "1.0"\n',
            "package.json": json.dumps(PACKAGE_JSON),
            "package-lock.json": lock,
        }
        pip_seconds = timed(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "-q",
                "-d",
                str(work / "pip-raw"),
                "-r",
                "requirements.txt",
            ],
            cwd=_checkout(work, files),
        )
        npm_seconds = timed(
            ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=work / "raw",
            env={"npm_config_cache": str(work / ".npm-raw")},
        )
        state = work / "stack"
        state.mkdir()
        with (
            GitServer(work) as git,
            StackProcess(
                state, free_port(), free_port(), KILN_CACHITO_ALLOW="127.0.0.0/8"
            ) as stack,
        ):
            api = CachitoAPI(stack.info["cachito_url"], stack.info["tokens"]["user"], backoff=0.5)
            repo, first_ref = git.repo("bench", {**files, "README": "first\n"})
            first, done = request_seconds(api, repo, first_ref)
            # the same request from another tenant (the same caller's POST would be answered
            # with the first request itself): its outputs reused whole from the cache
            other = mint((state / "jwt-private.pem").read_bytes(), "bench-other", "user")
            again, _ = request_seconds(
                CachitoAPI(stack.info["cachito_url"], other, backoff=0.5), repo, first_ref
            )
            # the project at a new commit: the source fetched, dependencies from the cache
            repo, second_ref = git.repo("bench", {**files, "README": "second\n"})
            commit, _ = request_seconds(api, repo, second_ref)
            started = time.monotonic()
            bundle = api.download_sources(done["id"], work / "bundle.tar.gz")
            download = time.monotonic() - started
            size = bundle.stat().st_size
        pip_deps = len([d for d in done["dependencies"] if d["type"] == "pip"])
        npm_deps = len([d for d in done["dependencies"] if d["type"] == "npm"])
        ratio = again / first
        rows = [
            ("project", f"{pip_deps} pip + {npm_deps} npm dependencies ({npm_count} lock entries)"),
            ("raw tools: pip download (sdists)", f"{pip_seconds:7.1f} s"),
            ("raw tools: npm ci --ignore-scripts", f"{npm_seconds:7.1f} s"),
            ("raw tools together", f"{pip_seconds + npm_seconds:7.1f} s"),
            ("Kiln request, first (registries)", f"{first:7.1f} s"),
            (
                "Kiln, the same request again",
                f"{again:7.1f} s  ({ratio:.0%} of first; goal <= {GOAL:.0%})",
            ),
            ("Kiln, a new commit (deps cached)", f"{commit:7.1f} s  ({commit / first:.0%})"),
            ("bundle", f"{size / 2**20:7.1f} MiB"),
            ("bundle download (Digest checked)", f"{size / 2**20 / download:7.1f} MiB/s"),
        ]
        width = max(len(name) for name, _ in rows)
        print(f"\n{'Cachito request':<{width}}  value")
        for name, value in rows:
            print(f"{name:<{width}}  {value}")
        return 0 if ratio <= GOAL else 1


def _checkout(work: Path, files: dict[str, str]) -> Path:
    raw = work / "raw"
    raw.mkdir(exist_ok=True)
    for name, text in files.items():
        (raw / name).write_text(text, encoding="utf-8")
    return raw


if __name__ == "__main__":
    sys.exit(main())
