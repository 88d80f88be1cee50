"""infra/local/emulation.py without changing this machine: a fake binfmt_misc and root runner."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from infra.local import emulation
from tests import skip_policy

NATIVE = emulation.native_arch()
FOREIGN = "aarch64" if NATIVE != "aarch64" else "x86_64"
HANDLER = f"qemu-{FOREIGN}"
MAGIC = r"\x7f\x45\x4c\x46\x02\x01\x01\x00"
MASK = r"\xff\xff\xff\xff\xff\xff\xff\x00"


def ok(_arch: str) -> None:
    return None


class FakeKernel:
    """Runs the root commands ensure_emulation gives against a directory standing in for
    /proc/sys/fs/binfmt_misc, the way the kernel would answer them."""

    def __init__(self, binfmt_dir: Path, *, mountable: bool = True) -> None:
        self.dir = binfmt_dir
        self.mountable = mountable
        self.commands: list[tuple[str, ...]] = []
        self.registered: list[str] = []

    def __call__(self, command: Sequence[str], stdin: str | None) -> tuple[int, str]:
        self.commands.append(tuple(command))
        if command[0] == "mount":
            if not self.mountable:
                return 32, "mount: permission denied"
            (self.dir / "register").write_text("")
            (self.dir / "status").write_text("enabled\n")
        elif command[0] == "tee" and command[1].endswith("/register"):
            assert stdin is not None
            self.registered.append(stdin)
            name = stdin[1:].split(stdin[0])[0]
            (self.dir / name).write_text("enabled\ninterpreter /x\nflags: F\n")
        elif command[0] == "tee":
            assert stdin == "1\n"
            Path(command[1]).write_text("enabled\n")
        return 0, ""


def fake_binfmt(tmp_path: Path, *, mounted: bool = True, entry: str | None = None) -> Path:
    binfmt_dir = tmp_path / "binfmt_misc"
    binfmt_dir.mkdir(parents=True)
    if mounted:
        (binfmt_dir / "register").write_text("")
        (binfmt_dir / "status").write_text("enabled\n")
    if entry is not None:
        (binfmt_dir / HANDLER).write_text(entry)
    return binfmt_dir


def definitions(tmp_path: Path, line: str) -> Path:
    conf_dir = tmp_path / "binfmt.d"
    conf_dir.mkdir(parents=True)
    (conf_dir / f"{HANDLER}.conf").write_text(f"# qemu-user-static\n{line}\n")
    return conf_dir


def test_the_native_arch_needs_no_emulation(tmp_path: Path) -> None:
    assert emulation.check_emulation(NATIVE, tmp_path / "missing") is None
    assert emulation.ensure_emulation(NATIVE, binfmt_dir=tmp_path / "missing") is None
    assert FOREIGN in emulation.foreign_arches() and NATIVE not in emulation.foreign_arches()


def test_reasons_name_what_is_missing(tmp_path: Path) -> None:
    check = emulation.check_emulation
    assert check("riscv64", tmp_path) == (
        "no qemu emulation known for arch riscv64 (known: x86_64, aarch64)"
    )
    missing = tmp_path / "missing"
    assert check(FOREIGN, missing) == f"the kernel has no binfmt_misc ({missing} does not exist)"
    unmounted = fake_binfmt(tmp_path / "a", mounted=False)
    assert check(FOREIGN, unmounted) == f"binfmt_misc is not mounted on {unmounted}"
    assert check(FOREIGN, fake_binfmt(tmp_path / "b")) == (
        f"no binfmt_misc entry {HANDLER}: qemu-user-static's handler is not registered"
    )
    disabled = fake_binfmt(tmp_path / "c", entry="disabled\ninterpreter /x\n")
    assert check(FOREIGN, disabled) == f"the binfmt_misc entry {disabled / HANDLER} is disabled"
    enabled = fake_binfmt(tmp_path / "d", entry="enabled\ninterpreter /x\n")
    assert check(FOREIGN, enabled, probe=ok) is None
    assert check(FOREIGN, enabled, probe=lambda arch: f"{arch} fails") == f"{FOREIGN} fails"


def test_runnable_arches_lists_the_native_arch_first(tmp_path: Path) -> None:
    assert emulation.runnable_arches(tmp_path / "missing") == (NATIVE,)


def test_ensure_mounts_and_registers_with_the_fix_binary_flag(tmp_path: Path) -> None:
    binfmt_dir = fake_binfmt(tmp_path, mounted=False)
    line = f":{HANDLER}:M::{MAGIC}:{MASK}:/bin/sh:OP"  # an interpreter that exists
    kernel = FakeKernel(binfmt_dir)
    reason = emulation.ensure_emulation(
        FOREIGN,
        binfmt_dir=binfmt_dir,
        definition_dirs=[tmp_path / "nothing", definitions(tmp_path, line)],
        binfmts_dir=tmp_path / "binfmts",
        run=kernel,
        probe=ok,
    )
    assert reason is None
    assert kernel.commands == [
        ("mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt_dir)),
        ("tee", str(binfmt_dir / "register")),
    ]
    assert kernel.registered == [line + "F\n"]
    # idempotent: nothing left to do
    again = FakeKernel(binfmt_dir)
    assert emulation.ensure_emulation(FOREIGN, binfmt_dir=binfmt_dir, run=again, probe=ok) is None
    assert again.commands == []


def test_ensure_enables_a_disabled_entry(tmp_path: Path) -> None:
    binfmt_dir = fake_binfmt(tmp_path, entry="disabled\n")
    kernel = FakeKernel(binfmt_dir)
    assert emulation.ensure_emulation(FOREIGN, binfmt_dir=binfmt_dir, run=kernel, probe=ok) is None
    assert kernel.commands == [("tee", str(binfmt_dir / HANDLER))]


def test_ensure_says_why_it_could_not_set_up(tmp_path: Path) -> None:
    binfmt_dir = fake_binfmt(tmp_path / "a", mounted=False)
    reason = emulation.ensure_emulation(
        FOREIGN, binfmt_dir=binfmt_dir, run=FakeKernel(binfmt_dir, mountable=False), probe=ok
    )
    assert reason == (
        f"binfmt_misc is not mounted on {binfmt_dir}, and setting it up failed: "
        f"cannot mount binfmt_misc on {binfmt_dir}: mount: permission denied"
    )
    binfmt_dir = fake_binfmt(tmp_path / "b")
    reason = emulation.ensure_emulation(
        FOREIGN,
        binfmt_dir=binfmt_dir,
        definition_dirs=[],
        binfmts_dir=tmp_path / "binfmts",
        run=FakeKernel(binfmt_dir),
        probe=ok,
    )
    assert reason is not None
    assert "is qemu-user-static installed? (apt-get install qemu-user-static)" in reason
    conf_dir = definitions(tmp_path / "b", f":{HANDLER}:M::{MAGIC}:{MASK}:/no/such/qemu:F")
    reason = emulation.ensure_emulation(
        FOREIGN, binfmt_dir=binfmt_dir, definition_dirs=[conf_dir], run=FakeKernel(binfmt_dir)
    )
    assert reason is not None and reason.endswith(
        "names interpreter /no/such/qemu, which does not exist"
    )


def test_binfmt_support_definitions_are_used_when_there_is_no_binfmt_d_file(
    tmp_path: Path,
) -> None:
    binfmts = tmp_path / "binfmts"
    binfmts.mkdir()
    (binfmts / HANDLER).write_text(
        "package qemu-user-static\ninterpreter /usr/libexec/qemu-binfmt/x-binfmt-P\n"
        f"magic {MAGIC}\noffset 0\nmask {MASK}\ncredentials no\nfix_binary yes\npreserve yes\n"
    )
    found = emulation.handler_definition(HANDLER, [tmp_path / "none"], binfmts)
    assert found == (
        f":{HANDLER}:M:0:{MAGIC}:{MASK}:/usr/libexec/qemu-binfmt/x-binfmt-P:PF",
        binfmts / HANDLER,
    )


def test_the_probe_program_runs_on_this_machine() -> None:
    if NATIVE not in emulation.QEMU_NAMES:
        pytest.skip(skip_policy.other_machine_arch(f"no probe program for {NATIVE}"))
    assert emulation.probe_arch(NATIVE) is None


def test_the_command_line_reports_each_arch(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emulation, "ensure_emulation", lambda arch, prompt: f"{arch} is missing")
    assert emulation.main([FOREIGN]) == 0
    assert capsys.readouterr().out == f"Emulation: no {FOREIGN} build host: {FOREIGN} is missing\n"
