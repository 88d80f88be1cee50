from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from infra.local import emulation, stack
from infra.local.stack import StackOptions
from tests.conftest import ROOT, free_port


def start_stack(state: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """`make up`'s program on free ports (unless ``settings`` say otherwise), to its exit."""
    env = {
        **os.environ,
        "KILN_API_PORT": str(free_port()),
        "KILN_AWS_PORT": str(free_port()),
        "KILN_TOKEN_PORT": "0",
        "KILN_STATE_DIR": str(state),
        **settings,
    }
    return subprocess.run(
        [sys.executable, "-m", "infra.local.stack"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_taken_port_is_refused_with_the_setting_to_change(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = start_stack(tmp_path, KILN_API_PORT=str(port))
    assert done.returncode == 2
    assert f"port {port} is in use" in done.stderr and "KILN_API_PORT" in done.stderr
    assert not (tmp_path / "stack.json").exists()


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("KILN_OMPS_ORGANIZATIONS", "{bad", "KILN_OMPS_ORGANIZATIONS is not JSON"),
        ("KILN_OMPS_ORGANIZATIONS", '{"a b": {}}', "organization name 'a b' must match"),
        ("KILN_OMPS_ORGANIZATIONS", '{"acme": {"colour": 1}}', "unknown options ['colour']"),
        (
            "KILN_OMPS_ORGANIZATIONS",
            '{"acme": {"replace_registry": [{"old": "(", "new": "", "regexp": true}]}}',
            "replace_registry regexp '('",
        ),
        ("KILN_OMPS_ROBOTS", '{"bot": {"password": "pw"}}', "KILN_OMPS_ROBOTS must map"),
        ("KILN_KOJI_HUBS", "[", "KILN_KOJI_HUBS is not JSON"),
        ("KILN_KOJI_HUBS", '{"koji.example/kojihub": {}}', "is not an http(s) hub URL"),
        ("KILN_KOJI_HUBS", '{"https://k/kojihub": {"user": "u"}}', "give both user and password"),
        ("KILN_KOJI_HUBS", '{"https://k/kojihub": {"krb": 1}}', "unknown krb"),
        ("KILN_KOJI_HUBS", '{"https://k/kojihub": {"timeout": 0}}', "timeout must be a positive"),
        ("KILN_FACES", "glance,ami", "KILN_FACES names ami: the faces are ims, composer"),
        ("KILN_GLANCE_INLINE_DATA_MAX", "5242880", "at most 4194304 bytes (4 MiB) fit a Lambda"),
    ],
)
def test_a_configuration_it_cannot_use_stops_the_start(
    tmp_path: Path, name: str, value: str, said: str
) -> None:
    done = start_stack(tmp_path, **{name: value})
    assert done.returncode == 2, done.stderr[-500:]
    assert "Kiln cannot start: " in done.stderr and said in done.stderr
    assert not (tmp_path / "stack.json").exists()


def hosts_from_env(monkeypatch: pytest.MonkeyPatch, setting: str | None) -> StackOptions:
    if setting is None:
        monkeypatch.delenv("KILN_BUILD_HOSTS", raising=False)
    else:
        monkeypatch.setenv("KILN_BUILD_HOSTS", setting)
    return StackOptions.from_env()


@pytest.mark.parametrize("setting", [None, "native"])
def test_by_default_every_arch_this_machine_can_run_gets_a_host(
    monkeypatch: pytest.MonkeyPatch, setting: str | None
) -> None:
    asked: list[str] = []

    def runs(arch: str) -> None:
        asked.append(arch)

    monkeypatch.setattr(stack.emulation, "ensure_emulation", runs)
    options = hosts_from_env(monkeypatch, setting)
    assert options.host_arches == (stack.native_arch(), *emulation.foreign_arches())
    assert asked == list(emulation.foreign_arches()) and options.hosts_not_started == ()


def test_an_arch_this_machine_cannot_run_gets_no_host_and_says_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(stack.emulation, "ensure_emulation", lambda arch: "no qemu here")
    with caplog.at_level(logging.INFO, logger="kiln.local"):
        options = hosts_from_env(monkeypatch, None)
    assert options.host_arches == (stack.native_arch(),)
    foreign = emulation.foreign_arches()
    assert options.hosts_not_started == tuple(f"no {arch} host: no qemu here" for arch in foreign)
    for arch in foreign:
        assert f"not starting a build host for {arch}: no qemu here" in caplog.text


def test_explicit_build_hosts_are_kept_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(arch: str) -> None:
        raise AssertionError("explicit hosts must not set up emulation")

    monkeypatch.setattr(stack.emulation, "ensure_emulation", never)
    both = hosts_from_env(monkeypatch, "x86_64,aarch64")
    assert both.host_arches == ("x86_64", "aarch64") and both.hosts_not_started == ()
    assert hosts_from_env(monkeypatch, "none").host_arches == ()
