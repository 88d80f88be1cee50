"""Running another architecture's binaries here: qemu-user-static through binfmt_misc.

``ensure_emulation("aarch64")`` makes an x86_64 machine able to run aarch64 programs, as
mmdebstrap needs to build an arm64 root file system: it mounts binfmt_misc when it is not
mounted and registers qemu's handler (with the F flag, so the kernel opens the interpreter once
and it works inside the build's chroot too) from the definition the qemu-user-static package
ships. It is idempotent, needs root for the changes (``sudo`` when not root) and returns None
when the arch can run, else why not. It proves the result by running a tiny program of that
arch. Only the standard library is used: the Makefile runs ``python3 -m infra.local.emulation``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger("kiln.emulation")

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
# Where the handler definitions live: systemd's binfmt.d (in precedence order), then
# binfmt-support's. qemu-user-static ships both.
BINFMT_D_DIRS = (
    Path("/etc/binfmt.d"),
    Path("/run/binfmt.d"),
    Path("/usr/local/lib/binfmt.d"),
    Path("/usr/lib/binfmt.d"),
)
BINFMTS_DIR = Path("/usr/share/binfmts")
# Kiln's arch names (IMS spelling) and qemu's name for each.
QEMU_NAMES = {"x86_64": "x86_64", "aarch64": "aarch64"}
_PROBE_EXIT = 42
# ELF e_machine and a program that exits with status 42, for each arch.
_PROBE_PROGRAMS = {
    # mov edi, 42; mov eax, 60 (exit); syscall
    "x86_64": (62, bytes.fromhex("bf2a000000b83c0000000f05")),
    # movz x0, #42; movz x8, #93 (exit); svc #0
    "aarch64": (183, struct.pack("<3I", 0xD2800540, 0xD2800BA8, 0xD4000001)),
}

# Runs a command that needs root; returns (exit status, output).
Runner = Callable[[Sequence[str], str | None], tuple[int, str]]


def native_arch() -> str:
    machine = platform.machine()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def foreign_arches() -> tuple[str, ...]:
    """The arches Kiln builds for that this machine can only run under emulation."""
    return tuple(arch for arch in QEMU_NAMES if arch != native_arch())


def runnable_arches(binfmt_dir: Path = BINFMT_DIR) -> tuple[str, ...]:
    """This machine's arch and every foreign arch it can run now (changes nothing)."""
    return (native_arch(),) + tuple(
        arch for arch in foreign_arches() if check_emulation(arch, binfmt_dir) is None
    )


def check_emulation(
    arch: str,
    binfmt_dir: Path = BINFMT_DIR,
    probe: Callable[[str], str | None] | None = None,
) -> str | None:
    """None if ``arch`` programs run here, else why not. Changes nothing."""
    if arch == native_arch():
        return None
    if arch not in QEMU_NAMES:
        return f"no qemu emulation known for arch {arch} (known: {', '.join(QEMU_NAMES)})"
    if not binfmt_dir.is_dir():
        return f"the kernel has no binfmt_misc ({binfmt_dir} does not exist)"
    if not (binfmt_dir / "register").exists():
        return f"binfmt_misc is not mounted on {binfmt_dir}"
    if _read_first_line(binfmt_dir / "status") == "disabled":
        return f"binfmt_misc is disabled ({binfmt_dir / 'status'} says disabled)"
    entry = binfmt_dir / f"qemu-{QEMU_NAMES[arch]}"
    if not entry.exists():
        return f"no binfmt_misc entry {entry.name}: qemu-user-static's handler is not registered"
    if _read_first_line(entry) != "enabled":
        return f"the binfmt_misc entry {entry} is disabled"
    return (probe or probe_arch)(arch)


def ensure_emulation(
    arch: str,
    *,
    binfmt_dir: Path = BINFMT_DIR,
    prompt: bool = False,
    definition_dirs: Sequence[Path] = BINFMT_D_DIRS,
    binfmts_dir: Path = BINFMTS_DIR,
    run: Runner | None = None,
    probe: Callable[[str], str | None] | None = None,
) -> str | None:
    """Set up running ``arch`` programs here if needed; None once they run, else why not.

    Mounts binfmt_misc and registers qemu's handler when missing, enables them when disabled.
    ``prompt`` lets sudo ask for a password (for an interactive `make`); without it sudo must
    not need one. ``run`` and ``probe`` replace the root commands and the test program (tests).
    """
    reason = check_emulation(arch, binfmt_dir, probe)
    if reason is None or arch not in QEMU_NAMES:
        return reason
    privileged = run or _privileged_runner(prompt)
    name = f"qemu-{QEMU_NAMES[arch]}"
    steps: list[Callable[[], str | None]] = [
        lambda: _mount(binfmt_dir, privileged),
        lambda: _enable(binfmt_dir / "status", privileged),
        lambda: _register(name, binfmt_dir, definition_dirs, binfmts_dir, privileged),
        lambda: _enable(binfmt_dir / name, privileged),
    ]
    for step in steps:
        problem = step()
        if problem:
            return f"{reason}, and setting it up failed: {problem}"
    after = check_emulation(arch, binfmt_dir, probe)
    return None if after is None else f"{after} (after setting up binfmt_misc)"


def handler_definition(
    name: str,
    definition_dirs: Sequence[Path] = BINFMT_D_DIRS,
    binfmts_dir: Path = BINFMTS_DIR,
) -> tuple[str, Path] | None:
    """The binfmt_misc register line for handler ``name`` (with the F flag) and its source."""
    for directory in definition_dirs:
        path = directory / f"{name}.conf"
        if not path.is_file():
            continue
        for raw in path.read_text(errors="replace").splitlines():
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            fields = line[1:].split(line[0])
            if len(fields) == 7 and fields[0] == name:
                if "F" not in fields[6]:
                    fields[6] += "F"
                return line[0] + line[0].join(fields), path
    path = binfmts_dir / name
    if path.is_file():
        return _from_binfmt_support(name, path.read_text(errors="replace")), path
    return None


def _from_binfmt_support(name: str, text: str) -> str:
    """A register line from binfmt-support's format file (``key value`` lines)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        fields[key] = value.strip()
    flags = "F"
    if fields.get("preserve") == "yes":
        flags = "P" + flags
    if fields.get("credentials") == "yes":
        flags += "C"
    kind = "E" if fields.get("extension") else "M"
    match = fields.get("extension") if kind == "E" else fields.get("magic", "")
    return (
        f":{name}:{kind}:{fields.get('offset', '')}:{match}:{fields.get('mask', '')}"
        f":{fields.get('interpreter', '')}:{flags}"
    )


def probe_arch(arch: str) -> str | None:
    """Run a tiny ``arch`` program that exits 42: None if it did, else what went wrong.

    None too when no temporary directory allows running programs (noexec): cannot tell.
    """
    machine, code = _PROBE_PROGRAMS[arch]
    with tempfile.TemporaryDirectory(prefix="kiln-probe-") as tmp:
        program = Path(tmp) / f"exit42-{arch}"
        program.write_bytes(_elf_program(machine, code))
        program.chmod(0o755)
        try:
            done = subprocess.run(
                [str(program)], capture_output=True, text=True, timeout=30, check=False
            )
        except PermissionError:
            return None
        except OSError as exc:
            return f"a test {arch} program did not start: {exc.strerror or exc}"
        except subprocess.TimeoutExpired:
            return f"a test {arch} program did not finish within 30 s"
    if done.returncode != _PROBE_EXIT:
        output = (done.stderr or done.stdout).strip()[:200]
        return f"a test {arch} program exited with {done.returncode}, not 42: {output}"
    return None


def _elf_program(machine: int, code: bytes) -> bytes:
    """A static little-endian ELF64 executable: one loadable segment holding ``code``."""
    base, header_size, segment_header_size = 0x400000, 64, 56
    size = header_size + segment_header_size + len(code)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little endian, SysV
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH",
        2,  # ET_EXEC
        machine,
        1,  # EV_CURRENT
        base + header_size + segment_header_size,  # entry point: the code
        header_size,  # program headers follow this header
        0,  # no section headers
        0,
        header_size,
        segment_header_size,
        1,
        0,
        0,
        0,
    )
    segment = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x10000)  # PT_LOAD R+X
    return header + segment + code


def _mount(binfmt_dir: Path, run: Runner) -> str | None:
    if (binfmt_dir / "register").exists():
        return None
    if not binfmt_dir.is_dir():
        run(["modprobe", "binfmt_misc"], None)  # a module not loaded yet: its dir is missing
        if not binfmt_dir.is_dir():
            return f"{binfmt_dir} does not exist (binfmt_misc kernel module unavailable)"
    status, output = run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt_dir)], None)
    if status != 0 or not (binfmt_dir / "register").exists():
        return f"cannot mount binfmt_misc on {binfmt_dir}: {output or f'exit status {status}'}"
    log.info("mounted binfmt_misc on %s", binfmt_dir)
    return None


def _enable(path: Path, run: Runner) -> str | None:
    if not path.exists() or _read_first_line(path) != "disabled":
        return None
    status, output = run(["tee", str(path)], "1\n")
    if status != 0:
        return f"cannot enable {path}: {output or f'exit status {status}'}"
    log.info("enabled %s", path)
    return None


def _register(
    name: str,
    binfmt_dir: Path,
    definition_dirs: Sequence[Path],
    binfmts_dir: Path,
    run: Runner,
) -> str | None:
    if (binfmt_dir / name).exists():
        return None
    found = handler_definition(name, definition_dirs, binfmts_dir)
    if found is None:
        where = ", ".join(str(d) for d in [*definition_dirs, binfmts_dir])
        return (
            f"no definition of the {name} handler in {where}: "
            "is qemu-user-static installed? (apt-get install qemu-user-static)"
        )
    line, source = found
    interpreter = Path(line[1:].split(line[0])[5])
    if not interpreter.exists():
        return f"{source} names interpreter {interpreter}, which does not exist"
    status, output = run(["tee", str(binfmt_dir / "register")], line + "\n")
    if status != 0 or not (binfmt_dir / name).exists():
        return f"cannot register {name} from {source}: {output or f'exit status {status}'}"
    log.info("registered %s from %s (interpreter %s)", name, source, interpreter)
    return None


def _privileged_runner(prompt: bool) -> Runner:
    """Runs commands as root: directly when we are root, else through sudo."""
    if os.geteuid() == 0:
        prefix: list[str] = []
    elif shutil.which("sudo"):
        prefix = ["sudo"] if prompt else ["sudo", "--non-interactive"]
    else:

        def refuse(command: Sequence[str], _input: str | None) -> tuple[int, str]:
            return 1, f"`{' '.join(command)}` needs root, and sudo is not installed"

        return refuse

    def run(command: Sequence[str], stdin: str | None) -> tuple[int, str]:
        try:
            done = subprocess.run(
                [*prefix, *command],
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return 1, str(exc)
        return done.returncode, " ".join(done.stderr.split())  # one line, for a reason

    return run


def _read_first_line(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").split("\n", 1)[0].strip()
    except OSError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.local.emulation",
        description="Let this machine run the foreign arches' build hosts (qemu-user-static).",
    )
    parser.add_argument("arches", nargs="*", help=f"default: {', '.join(foreign_arches())}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for arch in args.arches or foreign_arches():
        reason = ensure_emulation(arch, prompt=True)
        if reason is None:
            print(f"Emulation: {arch} programs run here; `make up` starts a build host for {arch}.")
        else:
            print(f"Emulation: no {arch} build host: {reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
