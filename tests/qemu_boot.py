"""Boot a UEFI disk image under qemu-system-x86_64 with OVMF (software emulation) until the
serial console shows a login prompt: the boot proof the disk-image tests share."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

OVMF = Path("/usr/share/ovmf/OVMF.fd")
BOOT_TIMEOUT = 240.0


def boot_to_login(disk: Path, scratch: Path, disk_format: str = "qcow2") -> str:
    """Boot a copy of ``disk``; returns the serial console text once it shows ``login:``."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None or not OVMF.is_file():
        pytest.skip("needs qemu-system-x86_64 (qemu-system-x86) and /usr/share/ovmf/OVMF.fd (ovmf)")
    copy = scratch / f"boot.{disk_format}"
    shutil.copyfile(disk, copy)  # the guest writes to its disk
    serial = scratch / "serial.log"
    command = [qemu, "-machine", "q35", "-accel", "tcg", "-m", "1024", "-smp", "2"]
    command += ["-bios", str(OVMF), "-display", "none", "-monitor", "none", "-no-reboot"]
    command += ["-drive", f"file={copy},format={disk_format},if=virtio", "-nic", "none"]
    command += ["-serial", f"file:{serial}"]
    started = time.monotonic()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    text = ""
    try:
        while time.monotonic() - started < BOOT_TIMEOUT:
            text = serial.read_text(errors="replace") if serial.exists() else ""
            if "login:" in text:
                print(f"booted to a login prompt in {time.monotonic() - started:.0f} s")
                return text
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"qemu exited ({process.returncode}): {stderr}\n{text[-3000:]}")
            time.sleep(1)
        pytest.fail(f"no login: prompt within {BOOT_TIMEOUT:.0f} s:\n{text[-3000:]}")
    finally:
        process.kill()
        process.wait()
