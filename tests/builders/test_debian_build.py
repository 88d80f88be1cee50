"""Real kiln-debian builds with mmdebstrap (root, network to a Debian mirror, a few minutes)."""

from __future__ import annotations

import base64
import json
import os
import platform
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from builders.backends import debian_mirror as mirrors
from builders.backends import debian_recipe as recipes
from builders.backends.base import (
    BUILD_PLAN_JSON,
    INITRD,
    KERNEL,
    PACKAGES_JSON,
    ROOTFS_SQUASHFS,
    SBOM_CYCLONEDX,
    SBOM_SPDX,
    Artifact,
    BuildContext,
    BuildError,
)
from builders.backends.debian import DebianBackend
from tests.builders.helpers import unpack_example

pytestmark = pytest.mark.slow

ARCH = platform.machine()
EPOCH = 1700000000
METADATA = [PACKAGES_JSON, BUILD_PLAN_JSON, SBOM_CYCLONEDX, SBOM_SPDX]
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


@pytest.fixture(scope="module", autouse=True)
def _needs_a_build_host() -> None:
    reason = DebianBackend().unavailable_reason(ARCH)
    if reason:
        pytest.skip(f"cannot build kiln-debian images here: {reason}")


def recipe_from_text(base: Path, text: str) -> Path:
    recipe_dir = base / "recipe"
    recipe_dir.mkdir(parents=True)
    (recipe_dir / "recipe.yaml").write_text(text)
    return recipe_dir


def build(
    base: Path,
    recipe_dir: Path,
    template: dict[str, str] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    log: Callable[[str], None] | None = None,
) -> list[Artifact]:
    log_file = (base / "build.log").open("a")

    def write_log(line: str) -> None:
        log_file.write(line + "\n")
        if log is not None:
            log(line)

    ctx = BuildContext(
        job_id=base.name,
        arch=ARCH,
        recipe_type="kiln-debian",
        recipe_dir=recipe_dir,
        work_dir=base / "work",
        out_dir=base / "out",
        template=template or {},
        source_date_epoch=EPOCH,
        image_root_archive_name="image-rootfs",
        log=write_log,
        should_stop=should_stop,
    )
    (base / "work").mkdir(parents=True, exist_ok=True)
    backend = DebianBackend()
    with log_file:
        backend.wait_for_repos(ctx)
        return backend.build(ctx)


def unsquashfs(*args: str | Path) -> str:
    return subprocess.run(
        ["unsquashfs", *map(str, args)], check=True, capture_output=True, text=True
    ).stdout


def mounts_below(path: Path) -> list[str]:
    prefix = str(path.resolve())
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [line.split()[4] for line in lines if line.split()[4].startswith(prefix)]


@pytest.fixture(scope="module")
def minimal_build(tmp_path_factory: pytest.TempPathFactory) -> list[Artifact]:
    base = tmp_path_factory.mktemp("minimal-1")
    recipe_dir, template = unpack_example("minimal", base)
    return build(base, recipe_dir, template)


def test_minimal_build_has_a_shell(minimal_build: list[Artifact]) -> None:
    assert [artifact.type for artifact in minimal_build] == [ROOTFS_SQUASHFS, *METADATA]
    rootfs = minimal_build[0].path
    assert rootfs.name == "image-rootfs.squashfs" and rootfs.stat().st_size > 10_000_000
    listing = unsquashfs("-lls", rootfs).splitlines()
    # bookworm has a merged /usr: /bin is a symlink to usr/bin, so /bin/sh is usr/bin/sh
    assert any(line.endswith("squashfs-root/bin -> usr/bin") for line in listing)
    assert any(line.endswith("squashfs-root/usr/bin/sh -> dash") for line in listing)
    assert unsquashfs("-cat", rootfs, "etc/hostname") == "kiln-minimal\n"
    assert "squashfs-root/etc/resolv.conf" not in "\n".join(listing)


def test_minimal_build_is_reproducible(
    minimal_build: list[Artifact], tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = tmp_path_factory.mktemp("minimal-2")
    recipe_dir, template = unpack_example("minimal", base)
    again = build(base, recipe_dir, template)
    for first, second in zip(minimal_build, again, strict=True):  # squashfs, metadata
        assert first.path.read_bytes() == second.path.read_bytes(), first.path.name


def test_ssh_server_build(tmp_path: Path) -> None:
    recipe_dir, template = unpack_example("ssh-server", tmp_path)
    artifacts = build(tmp_path, recipe_dir, template)
    assert [artifact.type for artifact in artifacts] == [ROOTFS_SQUASHFS, KERNEL, INITRD, *METADATA]
    rootfs, kernel, initrd = (artifact.path for artifact in artifacts[:3])
    assert (kernel.name, initrd.name) == ("vmlinuz", "initrd")
    assert kernel.stat().st_size > 1_000_000 and initrd.stat().st_size > 1_000_000
    if ARCH == "x86_64":
        assert kernel.read_bytes()[0x202:0x206] == b"HdrS"  # a bzImage
    keys = unsquashfs("-cat", rootfs, "home/kiln/.ssh/authorized_keys")
    assert keys.startswith("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJBLrTcrFLH")
    key_entry = unsquashfs("-lln", rootfs, "home/kiln/.ssh/authorized_keys").splitlines()[-1]
    assert key_entry.split()[:2] == ["-rw-------", "1000/1000"]
    assert unsquashfs("-cat", rootfs, "etc/motd").startswith(template["MOTD"])
    assert "kiln ALL=(ALL) NOPASSWD: ALL" in unsquashfs("-cat", rootfs, "etc/sudoers.d/kiln")
    listing = unsquashfs("-lls", rootfs)
    assert "-r--r----- root/root" in next(
        line for line in listing.splitlines() if line.endswith("etc/sudoers.d/kiln")
    )
    assert "squashfs-root/etc/kiln-greeting" in listing
    assert "squashfs-root/usr/sbin/sshd" in listing
    assert "ssh_host_" not in listing  # host keys are made at first boot, never baked in
    assert "kiln-ssh-hostkeys.service" in listing
    assert "multi-user.target.wants/systemd-networkd.service" in listing


def armored(keyring: Path) -> str:
    """An OpenPGP keyring file as an ASCII-armored block (RFC 4880: base64 and a CRC-24)."""
    data = keyring.read_bytes()
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc = (crc << 1) ^ (0x1864CFB if crc & 0x800000 else 0)
    text = base64.b64encode(data).decode()
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    checksum = base64.b64encode((crc & 0xFFFFFF).to_bytes(3, "big")).decode()
    return "\n".join(
        ["-----BEGIN PGP PUBLIC KEY BLOCK-----", "", *lines, f"={checksum}"]
        + ["-----END PGP PUBLIC KEY BLOCK-----", ""]
    )


def test_groups_extra_repository_and_build_metadata(tmp_path: Path) -> None:
    """groups before users, an extra repository (the mirror's bookworm-updates, verified with
    the Debian archive key given in the recipe), and packages.json / build-plan.json."""
    host = recipes.parse_recipe("suite: bookworm\n", tmp_path)
    mirror = mirrors.resolve_mirror(host, os.environ, Path("/etc/apt"))
    extra: dict[str, object] = {"url": mirror, "suite": "bookworm-updates"}
    if DEBIAN_KEYRING.is_file():
        extra["key"] = armored(DEBIAN_KEYRING)
    document = {
        "suite": "bookworm",
        "repositories": [extra],
        "groups": ["wheel"],
        "users": [{"name": "kiln", "groups": ["wheel", "sudo"]}],
        "customize": ["apt-get update --error-on=any", "id -nG kiln > /etc/kiln-groups"],
    }
    recipe_dir = recipe_from_text(tmp_path, yaml.safe_dump(document, sort_keys=False))
    artifacts = build(tmp_path, recipe_dir)
    assert [artifact.type for artifact in artifacts] == [ROOTFS_SQUASHFS, *METADATA]
    rootfs, packages_file, plan_file, *_ = (artifact.path for artifact in artifacts)
    assert (packages_file.name, plan_file.name) == ("packages.json", "build-plan.json")

    assert set(unsquashfs("-cat", rootfs, "etc/kiln-groups").split()) == {"kiln", "wheel", "sudo"}
    listed = unsquashfs("-cat", rootfs, "etc/apt/sources.list.d/kiln-extra.list")
    assert f"{mirror} bookworm-updates main" in listed
    assert "kiln-stage" not in unsquashfs("-cat", rootfs, "etc/apt/sources.list") + listed
    if "key" in extra:
        assert "deb [signed-by=/etc/apt/keyrings/kiln-extra-0.asc] " in listed
        key = unsquashfs("-cat", rootfs, "etc/apt/keyrings/kiln-extra-0.asc")
        assert key == str(extra["key"])

    packages = json.loads(packages_file.read_text())
    assert [p["name"] for p in packages] == sorted(p["name"] for p in packages)
    base_files = next(p for p in packages if p["name"] == "base-files")
    assert base_files["type"] == "deb" and base_files["arch"] in ("amd64", "arm64")
    assert len(base_files["sigmd5"]) == 32 and len(base_files["sha256"]) == 64
    assert base_files["version"].startswith("12.") and base_files["release"] == ""
    assert all(p["sigmd5"] for p in packages), [p["name"] for p in packages if not p["sigmd5"]]

    plan = json.loads(plan_file.read_text())
    assert plan["format"] == "kiln-build-plan/1" and plan["recipe"] == document
    assert (plan["mirror"], plan["suite"], plan["codename"]) == (mirror, "bookworm", "bookworm")
    assert len(plan["release_sha256"]) == 64 and plan["source_date_epoch"] == EPOCH
    assert plan["repositories"][0]["suite"] == "bookworm-updates"
    assert len(plan["repositories"][0]["release_sha256"]) == 64
    assert {"mmdebstrap", "mksquashfs", "apt", "dpkg", "kiln-agent"} == set(plan["tools"])
    assert plan["tools"]["mmdebstrap"].startswith("mmdebstrap ")
    planned = {p["name"]: p for p in plan["packages"]}
    assert set(planned) == {p["name"] for p in packages}
    assert planned["base-files"]["filename"].startswith("pool/main/b/base-files/")
    assert planned["base-files"]["sha256"] == base_files["sha256"]
    assert planned["base-files"]["size"] > 0
    assert plan["inputs"][0]["path"] == "recipe.yaml"


def test_unknown_package_names_it(tmp_path: Path) -> None:
    recipe_dir = recipe_from_text(tmp_path, "suite: bookworm\npackages: [kiln-no-such-pkg]\n")
    with pytest.raises(BuildError, match="Unable to locate package kiln-no-such-pkg"):
        build(tmp_path, recipe_dir)
    assert mounts_below(tmp_path) == []


def test_failing_customize_command_is_named(tmp_path: Path) -> None:
    recipe_dir = recipe_from_text(tmp_path, "suite: bookworm\ncustomize: [echo ok, 'exit 3']\n")
    with pytest.raises(BuildError, match=r"customize\[1\] failed with exit status 3: exit 3"):
        build(tmp_path, recipe_dir)


def _essentials(seen: list[str]) -> Callable[[str], None]:
    """A log that remembers when mmdebstrap starts installing (chroot mounts are up by then)."""

    def log(line: str) -> None:
        if "installing essential packages" in line:
            seen.append(line)

    return log


def test_stop_terminates_the_build(tmp_path: Path) -> None:
    recipe_dir = recipe_from_text(tmp_path, "suite: bookworm\n")
    seen: list[str] = []
    with pytest.raises(BuildError, match="build stopped: host is shutting down"):
        build(tmp_path, recipe_dir, should_stop=lambda: bool(seen), log=_essentials(seen))
    assert mounts_below(tmp_path) == []
    assert not (tmp_path / "out" / "image-rootfs.squashfs").exists()
