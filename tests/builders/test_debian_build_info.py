"""Fast tests of the kiln-debian build metadata (packages.json, build-plan.json): version
splitting, Packages index parsing, matching, the JSON shapes, and the customize script's
metadata part run against stand-ins for chroot, dpkg-query and apt-get."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from builders.backends import debian_build_info as info
from builders.backends import debian_repos as repos
from builders.backends import debian_script as scripts
from builders.backends.base import (
    BUILD_PLAN_JSON,
    PACKAGES_JSON,
    SBOM_CYCLONEDX,
    SBOM_SPDX,
    BuildError,
)
from tests.builders.helpers import context, load, serve_files, write_recipe

INDEX = """\
Package: base-files
Version: 12.4+deb12u5
Architecture: amd64
Maintainer: Santiago Vila <sanvila@debian.org>
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy.
 .
 Package: not-a-field
Filename: pool/main/b/base-files/base-files_12.4+deb12u5_amd64.deb
Size: 70736
MD5sum: 5d8e5ba8a4a3c7a1b2e0c2e7e6f3a8b1
SHA256: 1f1e1d1c1b1a19181716151413121110f0e0d0c0b0a090807060504030201000

Package: libc6
Version: 2.36-9+deb12u7
Architecture: amd64
filename: pool/main/g/glibc/libc6_2.36-9+deb12u7_amd64.deb
size: 2757000
md5sum: 11111111111111111111111111111111
sha256: 2222222222222222222222222222222222222222222222222222222222222222

Package: vim
Version: 2:9.0.1378-2
Architecture: amd64
Filename: pool/main/v/vim/vim_9.0.1378-2_amd64.deb
Size: 1567000
MD5sum: 33333333333333333333333333333333
SHA256: 4444444444444444444444444444444444444444444444444444444444444444

Package: unwanted
Version: 1.0
Architecture: amd64
MD5sum: 55555555555555555555555555555555
"""
UPDATES = """\
Package: libc6
Version: 2.36-9+deb12u7
Architecture: amd64
Filename: pool/main/g/glibc/other.deb
MD5sum: 66666666666666666666666666666666
SHA256: 7777777777777777777777777777777777777777777777777777777777777777
"""
INSTALLED = (
    "vim\t2:9.0.1378-2\tamd64\tinstall ok installed\n"
    "libc6\t2.36-9+deb12u7\tamd64\tinstall ok installed\n"
    "base-files\t12.4+deb12u5\tamd64\thold ok installed\n"
    "removed\t1.0-1\tamd64\tdeinstall ok config-files\n"
    "local-tool\t0.1\tall\tinstall ok installed\n"
)


@pytest.mark.parametrize(
    ("version", "parts"),
    [
        ("12.4+deb12u5", ("", "12.4+deb12u5", "")),
        ("2.36-9+deb12u7", ("", "2.36", "9+deb12u7")),
        ("2:9.0.1378-2", ("2", "9.0.1378", "2")),
        ("1:2.3-4-5", ("1", "2.3-4", "5")),  # upstream may hold dashes: the last one splits
        ("1:7.2+dfsg-7+deb12u18", ("1", "7.2+dfsg", "7+deb12u18")),
        ("3:1.0", ("3", "1.0", "")),
        ("0.1", ("", "0.1", "")),
    ],
)
def test_split_version(version: str, parts: tuple[str, str, str]) -> None:
    assert info.split_version(version) == parts


def test_read_installed_keeps_installed_packages_sorted() -> None:
    names = [package.name for package in info.read_installed(INSTALLED + "garbage line\n")]
    assert names == ["base-files", "libc6", "local-tool", "vim"]


def test_read_index_picks_wanted_stanzas_and_ignores_descriptions() -> None:
    found = dict(info.read_index(INDEX.splitlines(True), {"base-files", "libc6"}, "http://m/"))
    assert set(found) == {
        ("base-files", "12.4+deb12u5", "amd64"),
        ("libc6", "2.36-9+deb12u7", "amd64"),
    }
    base = found["base-files", "12.4+deb12u5", "amd64"]
    assert base == info.IndexEntry(
        md5sum="5d8e5ba8a4a3c7a1b2e0c2e7e6f3a8b1",
        sha256="1f1e1d1c1b1a19181716151413121110f0e0d0c0b0a090807060504030201000",
        filename="pool/main/b/base-files/base-files_12.4+deb12u5_amd64.deb",
        size=70736,
        repository="http://m/",
    )
    assert found["libc6", "2.36-9+deb12u7", "amd64"].size == 2757000  # field names: any case
    last = dict(info.read_index(INDEX.splitlines(), {"unwanted"}, "r"))  # no final blank line
    assert last["unwanted", "1.0", "amd64"].filename == "" and last[next(iter(last))].size is None


def _info_dir(base: Path) -> Path:
    directory = base / "build-info"
    (directory / info.LISTS_DIR).mkdir(parents=True)
    (directory / info.INSTALLED_FILE).write_text(INSTALLED)
    (directory / info.LISTS_DIR / "1").write_text(INDEX)
    (directory / info.LISTS_DIR / "2").write_text(UPDATES)
    (directory / info.SOURCES_FILE).write_text("1\thttp://m/debian/\n2\thttp://u/debian/\n")
    return directory


def test_collect_matches_name_version_and_arch(tmp_path: Path) -> None:
    packages = dict(info.collect(_info_dir(tmp_path)))
    by_name = {package.name: entry for package, entry in packages.items()}
    assert by_name["local-tool"] is None  # installed from a file: no index has it
    libc = by_name["libc6"]
    assert libc is not None and libc.repository == "http://m/debian/"  # the first source wins
    assert libc.md5sum == "1" * 32


def test_collect_needs_the_installed_list(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="build metadata: the customize script wrote no"):
        info.collect(tmp_path)


def test_packages_json_shape(tmp_path: Path) -> None:
    listed = info.packages_json(info.collect(_info_dir(tmp_path)))
    assert [item["name"] for item in listed] == ["base-files", "libc6", "local-tool", "vim"]
    assert listed[3] == {
        "type": "deb",
        "name": "vim",
        "version": "9.0.1378",
        "release": "2",
        "epoch": "2",
        "arch": "amd64",
        "sigmd5": "3" * 32,
        "sha256": "4" * 64,
    }
    assert listed[0]["epoch"] == "" and listed[0]["release"] == ""
    assert listed[2]["sigmd5"] == "" and listed[2]["sha256"] == ""


def _artifacts(base: Path) -> list[Path]:
    recipe_dir = write_recipe(
        base / "recipe",
        "suite: bookworm\nrepositories: [{url: 'http://x/debian', suite: extra}]\n"
        "files: [{src: files/motd, dest: /etc/motd}]\nhostname: '{{HOST}}'\n",
        {"files/motd": b"hello\n"},
    )
    ctx = context(base, recipe_dir, template={"HOST": "node", "A": "b"})
    ctx.out_dir.mkdir(parents=True)
    recipe = load(base, (recipe_dir / "recipe.yaml").read_text(), ctx.template)
    release = b"Origin: Debian\nSuite: oldstable\nCodename: bookworm\n"
    sources = info.Sources("http://m/debian", release, ((recipe.repositories[0], b"extra"),))
    tools = {"mmdebstrap": "mmdebstrap 1.3.5", "kiln-agent": "python 3"}
    artifacts = info.write_artifacts(ctx, recipe, sources, "amd64", _info_dir(base), tools)
    assert [artifact.type for artifact in artifacts] == [
        PACKAGES_JSON,
        BUILD_PLAN_JSON,
        SBOM_CYCLONEDX,
        SBOM_SPDX,
    ]
    return [artifact.path for artifact in artifacts]


def test_build_plan_shape(tmp_path: Path) -> None:
    packages_file, plan_file, *_ = _artifacts(tmp_path)
    assert (packages_file.name, plan_file.name) == ("packages.json", "build-plan.json")
    plan = json.loads(plan_file.read_text())
    assert list(plan) == [
        *("format", "recipe", "template_dictionary", "mirror", "suite", "codename"),
        *("release_sha256", "architecture", "source_date_epoch", "repositories", "packages"),
        *("tools", "inputs"),
    ]
    assert plan["format"] == "kiln-build-plan/1"
    assert plan["recipe"]["hostname"] == "node"  # after templating
    assert plan["template_dictionary"] == {"A": "b", "HOST": "node"}
    assert (plan["mirror"], plan["suite"], plan["codename"]) == (
        "http://m/debian",
        *["bookworm"] * 2,
    )
    assert plan["release_sha256"] == info._sha256(
        b"Origin: Debian\nSuite: oldstable\nCodename: bookworm\n"
    )
    assert (plan["architecture"], plan["source_date_epoch"]) == ("amd64", 1700000000)
    assert plan["repositories"] == [
        {
            "url": "http://x/debian",
            "suite": "extra",
            "components": ["main"],
            "key_sha256": None,
            "release_sha256": info._sha256(b"extra"),
        }
    ]
    vim = plan["packages"][3]
    assert vim == {
        "name": "vim",
        "version": "2:9.0.1378-2",
        "arch": "amd64",
        "sha256": "4" * 64,
        "filename": "pool/main/v/vim/vim_9.0.1378-2_amd64.deb",
        "size": 1567000,
        "repository": "http://m/debian/",
    }
    assert plan["packages"][2]["size"] is None  # local-tool: in no index
    assert plan["tools"] == {"mmdebstrap": "mmdebstrap 1.3.5", "kiln-agent": "python 3"}
    assert [item["path"] for item in plan["inputs"]] == ["files/motd", "recipe.yaml"]
    assert plan["inputs"][0]["sha256"] == info._sha256(b"hello\n")


def test_metadata_files_are_byte_identical_for_equal_builds(tmp_path: Path) -> None:
    first, second = _artifacts(tmp_path / "a"), _artifacts(tmp_path / "b")
    for one, two in zip(first, second, strict=True):
        assert one.read_bytes() == two.read_bytes()
    assert first[0].read_text().endswith("]\n") and oct(first[0].stat().st_mode)[-3:] == "644"


def test_recipe_inputs_skip_symlinks(tmp_path: Path) -> None:
    recipe_dir = write_recipe(tmp_path / "r", "suite: bookworm\n", {"b/z": b"z", "a": b"a"})
    (recipe_dir / "link").symlink_to("/etc/hostname")
    assert [item["path"] for item in info.recipe_inputs(recipe_dir)] == ["a", "b/z", "recipe.yaml"]


def test_tool_versions_take_the_first_line(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mmdebstrap").write_text("#!/bin/sh\necho\necho 'mmdebstrap 9.9'\necho more\n")
    (bin_dir / "mksquashfs").write_text("#!/bin/sh\necho 'mksquashfs version 4.6' >&2\nexit 1\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    versions = info.tool_versions(["mmdebstrap", "mksquashfs", "qemu-img"], {"PATH": str(bin_dir)})
    assert versions["mmdebstrap"] == "mmdebstrap 9.9"
    assert versions["mksquashfs"] == "mksquashfs version 4.6"
    assert versions["qemu-img"] == "unknown"
    assert versions["kiln-agent"].startswith("python 3.")


def test_release_field() -> None:
    release = b"Origin: Debian\nSuite: stable\nCodename: trixie\nDate: x\n"
    assert info.release_field(release, "Codename") == "trixie"
    assert info.release_field(b"Suite: sid\n", "Codename") == ""


# --- fetching the Release files -----------------------------------------------------------------


@pytest.fixture()
def server() -> Iterator[str]:
    with serve_files(
        {"/debian/dists/bookworm/Release": b"Codename: bookworm\n\xff raw bytes\n"}
    ) as url:
        yield url


def test_fetch_sources_keeps_the_raw_bytes(tmp_path: Path, server: str) -> None:
    recipe = load(tmp_path, "suite: bookworm\n")
    sources = info.fetch_sources(recipe, f"{server}/debian", context(tmp_path, tmp_path))
    assert sources.release == b"Codename: bookworm\n\xff raw bytes\n"
    assert sources.repositories == ()


def test_fetch_release_fails_clearly(
    tmp_path: Path, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(info, "_FETCH_ATTEMPTS", 1)
    with pytest.raises(BuildError, match=r"cannot fetch .*/nothing for the build plan: HTTP 404"):
        info.fetch_release(f"{server}/nothing", context(tmp_path, tmp_path))


# --- the customize script's metadata part, with stand-ins for the image's tools ---------------


def test_metadata_part_copies_the_indexes_apt_lists(tmp_path: Path) -> None:
    if not os.access("/usr/lib/apt/apt-helper", os.X_OK):
        pytest.skip("needs apt's /usr/lib/apt/apt-helper")
    root = tmp_path / "root"
    lists = root / "var/lib/apt/lists"
    lists.mkdir(parents=True)
    (lists / "m_dists_bookworm_main_binary-amd64_Packages").write_text(INDEX)
    (tmp_path / "outside_Packages").write_text(UPDATES)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_ins = {
        "chroot": 'shift\nexec "$@"\n',  # run the command on this machine instead
        "dpkg-query": f"printf '%s' '{INSTALLED}'\n",
        "apt-get": (
            'test "$APT_CONFIG" = /mm/apt.conf || exit 9\n'
            f"printf '%s\\t%s\\n' {lists}/m_dists_bookworm_main_binary-amd64_Packages http://m/ "
            f"{tmp_path}/outside_Packages http://outside/ {lists}/missing_Packages http://x/\n"
        ),
    }
    for name, body in stand_ins.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + body)
        (bin_dir / name).chmod(0o755)
    info_dir = tmp_path / "stage" / "build-info"
    script = 'root="$1"\nsay() { :; }\nfail() { echo "$*" >&2; exit 1; }\n'
    script += scripts._metadata_part(info_dir)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "MMDEBSTRAP_APT_CONFIG": "/mm/apt.conf"}
    subprocess.run(["sh", "-c", script, "sh", str(root)], env=env, check=True)
    assert (info_dir / info.SOURCES_FILE).read_text() == "1\thttp://m/\n"
    packages = dict(info.collect(info_dir))
    assert sum(entry is not None for entry in packages.values()) == 3  # all but local-tool

    del env["MMDEBSTRAP_APT_CONFIG"]  # not run by mmdebstrap: no index, a warning
    done = subprocess.run(
        ["sh", "-c", script, "sh", str(root)], env=env, check=True, capture_output=True, text=True
    )
    assert "packages.json lacks checksums" in done.stderr
    assert all(entry is None for entry in dict(info.collect(info_dir)).values())


def test_customize_script_collects_metadata_before_the_cleanup(tmp_path: Path) -> None:
    recipe = load(tmp_path, "suite: bookworm\ncustomize: [echo hi]\n")
    script = scripts.customize_script(recipe, [], repos.AptSources((), "", ()), tmp_path / "i")
    assert (
        script.index("customize[0]")
        < script.index("dpkg-query -W")
        < script.index("rm -f /etc/ssh")
    )
