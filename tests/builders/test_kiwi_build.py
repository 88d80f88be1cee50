"""kiwi-ng builds through the backend: real ones (slow: root, a Debian mirror, minutes) and the
checks that fail before kiwi-ng runs (fast)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import platform
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from builders.backends import kiwi
from builders.backends.base import (
    INITRD,
    KERNEL,
    ROOTFS_SQUASHFS,
    Artifact,
    BuildContext,
    BuildError,
)
from builders.backends.kiwi import KiwiBackend, error_summary
from infra.local import emulation
from tests import skip_policy
from tests.builders.helpers import unpack_example

ARCH = platform.machine()
FOREIGN = "aarch64" if ARCH == "x86_64" else "x86_64"
ELF_MACHINE = {"x86_64": 62, "aarch64": 183}  # e_machine, at offset 18 of an ELF header
EPOCH = 1700000000


@pytest.fixture(scope="module")
def build_host() -> None:
    reason = KiwiBackend().unavailable_reason(ARCH)
    if reason:
        pytest.skip(f"cannot build kiwi-ng images here: {reason}")


def context(
    base: Path,
    recipe_dir: Path,
    template: dict[str, str] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    log: Callable[[str], None] | None = None,
    arch: str = ARCH,
) -> BuildContext:
    log_path = base / "build.log"

    def write_log(line: str) -> None:
        with log_path.open("a") as log_file:
            log_file.write(line + "\n")
        if log is not None:
            log(line)

    return BuildContext(
        job_id=base.name,
        arch=arch,
        recipe_type="kiwi-ng",
        recipe_dir=recipe_dir,
        work_dir=base / "work",
        out_dir=base / "out",
        template=template or {},
        source_date_epoch=EPOCH,
        image_root_archive_name="image-rootfs",
        log=write_log,
        should_stop=should_stop,
    )


def build(backend: KiwiBackend, ctx: BuildContext) -> list[Artifact]:
    backend.wait_for_repos(ctx)
    return backend.build(ctx)


def example_with(base: Path, old: str, new: str) -> tuple[Path, dict[str, str]]:
    recipe_dir, template = unpack_example("kiwi-bookworm", base)
    config = recipe_dir / "config.xml"
    assert old in config.read_text()
    config.write_text(config.read_text().replace(old, new))
    return recipe_dir, template


def unsquashfs(*args: str | Path) -> str:
    return subprocess.run(
        ["unsquashfs", *map(str, args)], check=True, capture_output=True, text=True
    ).stdout


def mounts_below(path: Path) -> list[str]:
    prefix = str(path.resolve())
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [line.split()[4] for line in lines if line.split()[4].startswith(prefix)]


# -- real builds ------------------------------------------------------------------------------


@pytest.mark.slow
def test_example_builds_a_kis_image(build_host: None, tmp_path: Path) -> None:
    recipe_dir, template = unpack_example("kiwi-bookworm", tmp_path)
    artifacts = build(KiwiBackend(), context(tmp_path, recipe_dir, template))

    assert [artifact.type for artifact in artifacts] == [ROOTFS_SQUASHFS, KERNEL, INITRD]
    rootfs, kernel, initrd = (artifact.path for artifact in artifacts)
    assert [path.name for path in (rootfs, kernel, initrd)] == [
        "image-rootfs.squashfs",
        "vmlinuz",
        "initrd",
    ]
    assert all(path.parent == tmp_path / "out" for path in (rootfs, kernel, initrd))
    assert rootfs.stat().st_size > 50_000_000
    assert kernel.stat().st_size > 1_000_000 and initrd.stat().st_size > 1_000_000
    if ARCH == "x86_64":
        assert kernel.read_bytes()[0x202:0x206] == b"HdrS"  # a bzImage

    listing = unsquashfs("-l", rootfs).splitlines()
    assert "squashfs-root/etc/os-release" in listing
    # /etc/os-release is a link to ../usr/lib/os-release (unsquashfs -cat reads no links)
    assert "VERSION_CODENAME=bookworm" in unsquashfs("-cat", rootfs, "usr/lib/os-release")
    assert unsquashfs("-cat", rootfs, "etc/hostname") == template["HOSTNAME"] + "\n"
    assert unsquashfs("-cat", rootfs, "etc/motd") == template["MOTD"] + "\n"
    assert f"127.0.1.1\t{template['HOSTNAME']}\n" in unsquashfs("-cat", rootfs, "etc/hosts")
    assert "Modifications to intermediate config file" not in (tmp_path / "build.log").read_text()
    assert any(line.startswith("squashfs-root/usr/lib/modules/") for line in listing)
    # mksquashfs ran with SOURCE_DATE_EPOCH: every time stamp is the job's epoch
    assert "2023-11-14 22:13" in unsquashfs("-lls", rootfs, "etc/hostname")
    assert mounts_below(tmp_path) == []


@pytest.mark.slow
def test_unknown_package_names_it(build_host: None, tmp_path: Path) -> None:
    recipe_dir, template = example_with(
        tmp_path, '<package name="dracut"/>', '<package name="kiln-no-such-pkg"/>'
    )
    with pytest.raises(BuildError, match="Unable to locate package kiln-no-such-pkg") as caught:
        build(KiwiBackend(), context(tmp_path, recipe_dir, template))
    assert str(caught.value).startswith("kiwi-ng failed (exit status 1): ")
    assert mounts_below(tmp_path) == []
    # the half-built root is kept for an enable_debug shell
    assert caught.value.root == tmp_path / "work" / "kiwi-target" / "build" / "image-root"
    assert (caught.value.root / "usr" / "bin" / "apt-get").exists()


@pytest.mark.slow
def test_foreign_arch_bootstraps_that_arch(tmp_path: Path) -> None:
    """apt fetches the image's arch, not the host's (kiwi-ng alone would not tell it)."""
    reason = emulation.check_emulation(FOREIGN)
    if reason:
        pytest.skip(skip_policy.no_emulation(FOREIGN, reason))
    reason = KiwiBackend().unavailable_reason(FOREIGN)
    if reason:
        pytest.skip(f"cannot build {FOREIGN} kiwi-ng images here: {reason}")
    recipe_dir, template = example_with(
        tmp_path, '<package name="dracut"/>', '<package name="kiln-no-such-pkg"/>'
    )
    ctx = context(tmp_path, recipe_dir, template, arch=FOREIGN)
    with pytest.raises(BuildError, match="Unable to locate package kiln-no-such-pkg") as caught:
        build(KiwiBackend(), ctx)  # fails in the chrooted install, after the bootstrap
    root = caught.value.root
    assert root is not None
    dpkg = (root / "usr" / "bin" / "dpkg").read_bytes()
    assert dpkg[:4] == b"\x7fELF" and int.from_bytes(dpkg[18:20], "little") == ELF_MACHINE[FOREIGN]
    assert mounts_below(tmp_path) == []


@pytest.mark.slow
def test_concurrent_builds_do_not_collide_on_the_host_dpkg_lock(
    build_host: None, tmp_path: Path
) -> None:
    """Two builds bootstrap at once: both get to the chrooted install (and fail there)."""
    errors: dict[str, str] = {}

    def one(name: str) -> None:
        base = tmp_path / name
        base.mkdir()
        recipe_dir, template = example_with(
            base, '<package name="dracut"/>', '<package name="kiln-no-such-pkg"/>'
        )
        try:
            build(KiwiBackend(), context(base, recipe_dir, template))
        except BuildError as exc:
            errors[name] = str(exc)

    threads = [threading.Thread(target=one, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(errors) == ["a", "b"]
    for message in errors.values():
        assert "Unable to locate package kiln-no-such-pkg" in message
    waited = (tmp_path / "a" / "build.log").read_text() + (tmp_path / "b" / "build.log").read_text()
    assert "waiting for another kiwi-ng build's bootstrap to end" in waited


@pytest.mark.slow
def test_stop_interrupts_the_build(build_host: None, tmp_path: Path) -> None:
    recipe_dir, template = unpack_example("kiwi-bookworm", tmp_path)
    seen: list[str] = []

    def log(line: str) -> None:
        if "Installing system (chroot)" in line:  # the image root's mounts are up by then
            seen.append(line)

    ctx = context(tmp_path, recipe_dir, template, should_stop=lambda: bool(seen), log=log)
    with pytest.raises(BuildError, match="build stopped: host is shutting down"):
        build(KiwiBackend(), ctx)
    assert mounts_below(tmp_path) == []
    assert not (tmp_path / "out" / "image-rootfs.squashfs").exists()


# -- failures before kiwi-ng runs (fast) ------------------------------------------------------


@contextlib.contextmanager
def http_server(root: Path) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()


def fast_backend(tmp_path: Path, mirror: str, repo_wait_seconds: float = 60) -> KiwiBackend:
    return KiwiBackend(
        repo_wait_seconds=repo_wait_seconds,
        environ={"KILN_DEBIAN_MIRROR": mirror},
        etc_apt=tmp_path / "no-apt",
        bootstrap_lock=tmp_path / "lock",
    )


def example_recipe(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    base = tmp_path / "job"
    base.mkdir()
    return unpack_example("kiwi-bookworm", base)


def test_unreachable_repository_fails_waiting(tmp_path: Path) -> None:
    recipe_dir, template = example_recipe(tmp_path)
    with socket_closed_port() as port:
        backend = fast_backend(tmp_path, f"http://127.0.0.1:{port}/debian", repo_wait_seconds=0)
        ctx = context(tmp_path, recipe_dir, template)
        with pytest.raises(BuildError) as caught:
            backend.wait_for_repos(ctx)
    message = str(caught.value)
    assert f"package repository http://127.0.0.1:{port}/debian did not answer within 0 s" in (
        message
    )
    assert "Connection refused" in message and "<source path=...>" in message


def test_missing_suite_fails_at_once(tmp_path: Path) -> None:
    recipe_dir, template = example_recipe(tmp_path)
    (tmp_path / "www").mkdir()
    with http_server(tmp_path / "www") as url:
        backend = fast_backend(tmp_path, url + "/debian", repo_wait_seconds=60)
        with pytest.raises(BuildError, match=r"has no index at .*/dists/bookworm/Release \(404"):
            backend.wait_for_repos(context(tmp_path, recipe_dir, template))


def test_repository_that_answers_passes(tmp_path: Path) -> None:
    recipe_dir, template = example_recipe(tmp_path)
    release = tmp_path / "www" / "debian" / "dists" / "bookworm" / "Release"
    release.parent.mkdir(parents=True)
    release.write_text("Suite: stable\nArchitectures: amd64 arm64\nComponents: main\n")
    lines: list[str] = []
    with http_server(tmp_path / "www") as url:
        backend = fast_backend(tmp_path, url + "/debian")
        backend.wait_for_repos(context(tmp_path, recipe_dir, template, log=lines.append))
    assert any(line.endswith("/debian/dists/bookworm/Release answers") for line in lines)


def test_undefined_template_key_fails_before_kiwi_runs(tmp_path: Path) -> None:
    recipe_dir, template = example_recipe(tmp_path)
    del template["MOTD"]
    backend = fast_backend(tmp_path, "http://mirror.example/debian")
    with pytest.raises(BuildError, match=r"root/etc/motd uses template key\(s\) MOTD"):
        backend.build(context(tmp_path, recipe_dir, template))
    assert not (tmp_path / "work" / "kiwi-target").exists()


def test_non_kis_description_fails_before_kiwi_runs(tmp_path: Path) -> None:
    recipe_dir, template = example_recipe(tmp_path)
    config = recipe_dir / "config.xml"
    config.write_text(config.read_text().replace('archive="false"', ""))
    backend = fast_backend(tmp_path, "http://mirror.example/debian")
    with pytest.raises(BuildError, match=r'config.xml: .* \(add archive="false"\); Kiln builds'):
        backend.build(context(tmp_path, recipe_dir, template))


def test_unavailable_reasons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert KiwiBackend().unavailable_reason("ppc64le") == (
        "unsupported arch ppc64le (supported: x86_64, aarch64)"
    )
    monkeypatch.setattr(kiwi.os, "geteuid", lambda: 0)
    monkeypatch.setattr(kiwi.shutil, "which", lambda tool, path=None: f"/usr/bin/{tool}")
    foreign = "aarch64" if ARCH == "x86_64" else "x86_64"
    assert KiwiBackend(binfmt_dir=tmp_path).unavailable_reason(foreign) == (
        f"cannot run {foreign} binaries: no binfmt_misc entry qemu-{foreign} (qemu-user-static)"
    )
    (tmp_path / f"qemu-{foreign}").touch()
    assert KiwiBackend(binfmt_dir=tmp_path).unavailable_reason(foreign) is None
    monkeypatch.setattr(kiwi, "_find_kiwi_ng", lambda: None)
    assert "the kiwi-ng CLI is not installed" in (KiwiBackend().unavailable_reason(ARCH) or "")


def test_error_summary_picks_kiwi_and_apt_errors() -> None:
    lines = [
        "[ DEBUG   ]: 13:14:18 | bootstrap: Get:1 http://deb.example/debian bookworm InRelease",
        "[ DEBUG   ]: 13:14:21 | system: E: Unable to locate package kiln-no-such-pkg",
        "Reading package lists...",
        "[ ERROR   ]: 13:14:22 | KiwiInstallPhaseFailed: System package installation failed:",
        "  E: Unable to locate package kiln-no-such-pkg",
        "[ DEBUG   ]: 13:14:22 | EXEC: [umount -l /x/proc]",
    ]
    assert error_summary(lines) == (
        "E: Unable to locate package kiln-no-such-pkg | "
        "KiwiInstallPhaseFailed: System package installation failed:"
    )
    assert error_summary(["one", "", "two"]) == "one | two"


@contextlib.contextmanager
def socket_closed_port() -> Iterator[int]:
    """A local port nothing listens on (bound, never listening, so connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
