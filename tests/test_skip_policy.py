"""The skip policy (tests/skip_policy.py): a run of the suite fails on a skip whose reason is not
documented there, wherever the skip comes from, and passes on the documented ones."""

from __future__ import annotations

import pytest

from tests import skip_policy

#: one test per way to skip, each with a reason the policy does not know
UNEXPLAINED = """
import pytest

@pytest.fixture
def tool():
    pytest.skip("frobnicate is not installed")

def test_in_the_body():
    pytest.skip("no reason given")

@pytest.mark.skipif(True, reason="not today")
def test_by_a_mark():
    pass

def test_by_a_fixture(tool):
    pass

def test_passes():
    pass

@pytest.mark.xfail(reason="an expected failure is no skip")
def test_expected_to_fail():
    assert False
"""

#: skips with the reasons the policy allows, built by its helpers as the suite's tests build them
ALLOWED = """
import pytest
from tests import skip_policy

MISSING = skip_policy.published_contract("no-such-contract.yaml")

@skip_policy.needs_published(MISSING)
def test_needs_the_published_contracts():
    pass

def test_needs_emulation():
    pytest.skip(skip_policy.no_emulation("aarch64", "binfmt_misc is not mounted"))

def test_needs_another_machine():
    pytest.skip(skip_policy.other_machine_arch("x86_64 images only"))

def test_passes():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A throwaway suite in pytester's directory with the policy as its plugin (imported from
    this repository, by xdist's workers too, whose sys.path is the one pytest started with)."""
    monkeypatch.delenv(skip_policy.STRICT_ENV, raising=False)
    pytester.makeconftest(
        f"import sys\nsys.path.insert(0, {str(skip_policy.REPO_ROOT)!r})\n"
        'pytest_plugins = ("tests.skip_policy",)\n'
    )
    return pytester


def test_every_allowed_reason_is_documented_and_its_helper_matches_it() -> None:
    assert len({entry.prefix for entry in skip_policy.ALLOWED}) == len(skip_policy.ALLOWED)
    assert all(entry.why.strip() for entry in skip_policy.ALLOWED)
    reasons = [
        skip_policy.no_published_contracts(skip_policy.published_contract("a.yaml")),
        skip_policy.no_emulation("aarch64", "why"),
        skip_policy.other_machine_arch("detail"),
    ]
    assert [skip_policy.allowed(reason) for reason in reasons] == list(skip_policy.ALLOWED)
    assert skip_policy.allowed("qemu-img is not installed (make host-deps)") is None


def test_published_contracts_are_read_beside_the_repository() -> None:
    root = skip_policy.REPO_ROOT
    assert (root / "pyproject.toml").is_file()
    assert skip_policy.published_contract("x.yaml") == root.parent / "shared" / "specs" / "x.yaml"
    reason = skip_policy.no_published_contracts(skip_policy.published_contract("x.yaml"))
    assert reason == (
        "the published contracts are not next to the repository (../shared/specs/x.yaml missing)"
    )


def test_a_strict_run_fails_and_lists_each_unexplained_skip(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.makepyfile(test_unexplained=UNEXPLAINED)
    monkeypatch.setenv(skip_policy.STRICT_ENV, "1")
    result = suite.runpytest()
    result.assert_outcomes(passed=1, skipped=3, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*= skips for reasons tests/skip_policy.py does not allow =*",
            "no reason given:",
            "    test_unexplained.py::test_in_the_body (call)",
            "not today:",
            "    test_unexplained.py::test_by_a_mark (setup)",
            "frobnicate is not installed:",
            "    test_unexplained.py::test_by_a_fixture (setup)",
            "3 skip(s) with no allowed reason fail this run*",
        ]
    )
    assert "test_expected_to_fail" not in result.stdout.str().split("does not allow")[1]


def test_a_module_that_skips_as_it_is_collected_counts(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.makepyfile(
        test_importorskip='import pytest\nkiln_nothing = pytest.importorskip("kiln_nothing")\n',
        test_fine="def test_passes():\n    pass\n",
    )
    monkeypatch.setenv(skip_policy.STRICT_ENV, "1")
    result = suite.runpytest()
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["could not import 'kiln_nothing'*", "    test_importorskip.py (collect)"]
    )


def test_a_strict_run_passes_when_every_skip_is_allowed(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.makepyfile(test_allowed=ALLOWED)
    monkeypatch.setenv(skip_policy.STRICT_ENV, "1")
    result = suite.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=3)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "skip policy: 3 skip(s), each for an allowed reason (tests/skip_policy.py)",
            "*the published contracts are not next to the repository "
            "(../shared/specs/no-such-contract.yaml missing)",
        ]
    )


def test_the_workers_of_an_xdist_run_report_their_skips_to_the_policy(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.makepyfile(test_unexplained=UNEXPLAINED, test_allowed=ALLOWED)
    monkeypatch.setenv(skip_policy.STRICT_ENV, "1")
    quick = ("-p", "no:schemathesis", "-p", "no:hypothesispytest", "-p", "no:anyio")
    result = suite.runpytest("-n", "2", *quick)
    result.assert_outcomes(passed=2, skipped=6, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["3 skip(s) with no allowed reason fail this run*"])


def test_off_when_a_developer_names_the_tests_or_turns_it_off(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.makepyfile(test_unexplained=UNEXPLAINED)
    assert suite.runpytest("test_unexplained.py").ret == pytest.ExitCode.OK
    monkeypatch.setenv(skip_policy.STRICT_ENV, "0")
    suite.makeini("[pytest]\ntestpaths = test_unexplained.py\n")
    assert suite.runpytest().ret == pytest.ExitCode.OK


def test_on_by_default_for_the_whole_configured_suite(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_unexplained=UNEXPLAINED)
    suite.makeini("[pytest]\ntestpaths = test_unexplained.py\n")
    result = suite.runpytest()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["3 skip(s) with no allowed reason fail this run*"])
