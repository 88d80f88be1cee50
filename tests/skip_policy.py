"""Which skips the test suite allows, and the pytest plugin that fails a run for any other.

`make test` promises to run every test, real builds included, on a fresh machine: it installs
the build-host packages first (`make host-deps`), so a test that skips there for a missing tool,
for want of root or for any reason nobody wrote down hides a test that never ran. A skip is
allowed only when its reason starts with one of the prefixes in ``ALLOWED`` below, each
documented there; tests build those reasons with the helpers of this module, so they match
exactly. Every other skip (``pytest.skip``, a ``skipif`` mark, ``pytest.importorskip``, a
fixture or a whole module that skips) is listed at the end of the run and fails it.

Strict or not: the policy is on when pytest runs the whole configured suite (no test paths on
the command line: what `make test`, `make test-fast` and `make test-slow` run) and off when a
developer names files or tests (``pytest tests/glance/test_documents.py``), where a skip only
shows in pytest's ``-ra`` summary. ``KILN_STRICT_SKIPS=1`` turns it on and ``KILN_STRICT_SKIPS=0``
off whatever the arguments.

The published contracts (documents of the APIs Kiln serves, kept outside this repository) are
read from ``../shared/specs/`` next to the repository root, through ``published_contract``;
a test that needs them skips through ``needs_published`` when they are not there.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

#: the repository root (the directory holding pyproject.toml)
REPO_ROOT = Path(__file__).resolve().parents[1]
#: the published contracts: ``shared/specs`` beside the repository (``../shared/specs/``)
PUBLISHED_SPECS = REPO_ROOT.parent / "shared" / "specs"

#: the environment variable that forces the policy on (1) or off (0)
STRICT_ENV = "KILN_STRICT_SKIPS"

# -- the allowed reasons ------------------------------------------------------------------------

#: the published contracts are a checkout of their own beside this one, absent in CI's clean clone
NO_PUBLISHED_CONTRACTS = "the published contracts are not next to the repository"
#: this machine cannot run another architecture's programs (kernel or container without
#: binfmt_misc, or not allowed to register qemu-user-static's handler)
NO_EMULATION = "no emulation of another architecture (binfmt_misc/qemu-user-static unavailable)"
#: the test is written for one machine architecture and this machine has another
OTHER_MACHINE_ARCH = "not for this machine's architecture"


@dataclasses.dataclass(frozen=True)
class AllowedSkip:
    """A skip reason the policy accepts: any reason starting with ``prefix``; ``why`` says
    when it happens and why a run that skips for it still counts as having run everything."""

    prefix: str
    why: str


ALLOWED: tuple[AllowedSkip, ...] = (
    AllowedSkip(
        NO_PUBLISHED_CONTRACTS,
        "The published contracts (the composer cloud API document, Glance's api-ref samples) "
        "live in their own checkout at ../shared/specs/ beside the repository, not in it: a "
        "clean clone has no such neighbour. Kiln's own documents are tested regardless.",
    ),
    AllowedSkip(
        NO_EMULATION,
        "Foreign-arch builds run the other arch's programs through qemu-user-static's "
        "binfmt_misc handler. `make host-deps` installs qemu-user-static and registers it where "
        "it can, but a kernel without binfmt_misc, or a container that may not mount or write "
        "it, cannot run them whatever is installed.",
    ),
    AllowedSkip(
        OTHER_MACHINE_ARCH,
        "Kiln builds for x86_64 and aarch64; the disk-image boot test builds an x86_64 image "
        "natively and boots it, and the emulation probe exists for those two arches only. On a "
        "machine of another arch those tests have nothing to run.",
    ),
)

# -- reasons, built here so that they match the allowed prefixes exactly -------------------------


def published_contract(*parts: str) -> Path:
    """A file or directory of the published contracts: ``../shared/specs/<parts>`` from the
    repository root (whether it exists or not)."""
    return PUBLISHED_SPECS.joinpath(*parts)


def no_published_contracts(*paths: Path) -> str:
    """The skip reason for a test whose published contract ``paths`` are missing."""
    shown = ", ".join(str(Path("..") / path.relative_to(REPO_ROOT.parent)) for path in paths)
    return f"{NO_PUBLISHED_CONTRACTS} ({shown} missing)"


def needs_published(*paths: Path) -> pytest.MarkDecorator:
    """Skips the test (allowed) when any of the published contract ``paths`` is missing."""
    missing = [path for path in paths if not path.exists()]
    return pytest.mark.skipif(bool(missing), reason=no_published_contracts(*missing))


def no_emulation(arch: str, why: str) -> str:
    """The skip reason for a test that needs to run ``arch`` programs on a machine that cannot
    (``why``: what the emulation check said)."""
    return f"{NO_EMULATION}: cannot run {arch} programs: {why}"


def other_machine_arch(detail: str) -> str:
    """The skip reason for a test written for another machine architecture."""
    return f"{OTHER_MACHINE_ARCH}: {detail}"


def allowed(reason: str) -> AllowedSkip | None:
    """The allow-list entry ``reason`` falls under, or None."""
    return next((entry for entry in ALLOWED if reason.startswith(entry.prefix)), None)


# -- the plugin ---------------------------------------------------------------------------------


def strict(config: pytest.Config) -> bool:
    """Whether unexplained skips fail this run: ``KILN_STRICT_SKIPS`` if set, else whether the
    run is the whole configured suite (no test paths given)."""
    value = os.environ.get(STRICT_ENV, "").strip().lower()
    if value:
        return value not in ("0", "false", "no", "off")
    return config.args_source is pytest.Config.ArgsSource.TESTPATHS


def skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The reason a skipped report gives, as pytest's ``-rs`` summary shows it."""
    longrepr = report.longrepr
    if isinstance(longrepr, Sequence) and not isinstance(longrepr, str) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr)
    return reason.removeprefix("Skipped: ")


@dataclasses.dataclass(frozen=True)
class Skip:
    nodeid: str
    when: str
    reason: str


class SkipPolicy:
    """Collects every skip of the run (on xdist's controller, which sees every worker's
    reports) and, when strict, fails the run if one has a reason ``ALLOWED`` lacks."""

    name = "kiln-skip-policy"

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.skips: list[Skip] = []

    @property
    def unexplained(self) -> list[Skip]:
        return [skip for skip in self.skips if allowed(skip.reason) is None]

    def _record(self, report: pytest.TestReport | pytest.CollectReport, when: str) -> None:
        self.skips.append(Skip(report.nodeid, when, skip_reason(report)))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            self._record(report, report.when)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped:
            self._record(report, "collect")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.strict and self.unexplained and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.strict:
            return
        unexplained = self.unexplained
        if not unexplained:
            counted = f"{len(self.skips)} skip(s), each for an allowed reason"
            terminalreporter.write_line(
                f"skip policy: {counted if self.skips else 'no skips'} (tests/skip_policy.py)"
            )
            return
        terminalreporter.write_sep("=", "skips for reasons tests/skip_policy.py does not allow")
        by_reason: dict[str, list[Skip]] = {}
        for skip in unexplained:
            by_reason.setdefault(skip.reason, []).append(skip)
        for reason, skips in by_reason.items():
            terminalreporter.write_line(f"{reason}:", red=True, bold=True)
            for skip in skips:
                terminalreporter.write_line(f"    {skip.nodeid} ({skip.when})")
        terminalreporter.write_line(
            f"{len(unexplained)} skip(s) with no allowed reason fail this run (skip policy, "
            f"{STRICT_ENV}=0 turns it off). Allowed reasons start with:",
            red=True,
        )
        for entry in ALLOWED:
            terminalreporter.write_line(f"    {entry.prefix!r}")


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller sees its reports
        return
    if not config.pluginmanager.has_plugin(SkipPolicy.name):
        config.pluginmanager.register(SkipPolicy(strict(config)), SkipPolicy.name)
