"""The kiwi-ng recipe format: finding the description, templating, reading repositories."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from builders.backends import kiwi_description as descriptions
from builders.backends.base import BuildError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "recipes" / "kiwi-bookworm"

DESCRIPTION = """<?xml version="1.0" encoding="utf-8"?>
<image schemaversion="8.5" name="test">
    <profiles>
        <profile name="Default" description="imported" import="true"/>
        <profile name="Other" description="not selected"/>
    </profiles>
    <preferences>
        <version>1.0.0</version>
        <packagemanager>apt</packagemanager>
        <type image="kis" filesystem="squashfs" archive="false"/>
    </preferences>
    <repository type="apt-deb" distribution="bookworm" components="main contrib">
        <source path="{{kiln_debian_mirror}}"/>
    </repository>
    <repository type="apt-deb" distribution="bookworm" arch="aarch64">
        <source path="http://ports.example/debian"/>
    </repository>
    <repository type="apt-deb" imageonly="true" distribution="bookworm">
        <source path="http://image-only.example/debian"/>
    </repository>
    <repository type="apt-deb" profiles="Other" distribution="bookworm">
        <source path="http://other-profile.example/debian"/>
    </repository>
    <repository type="apt-deb" profiles="Default">
        <source path="http://flat.example/repo/"/>
    </repository>
    <repository type="rpm-md">
        <source path="https://rpm.example/repo"/>
    </repository>
    <repository type="apt-deb" distribution="bookworm">
        <source path="obs://Debian:12/standard"/>
    </repository>
</image>
"""

HOST = {descriptions.HOST_MIRROR_KEY: "http://mirror.example/debian"}


def write(directory: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return directory


# -- finding the description ------------------------------------------------------------------


def test_config_xml_is_preferred(tmp_path: Path) -> None:
    write(tmp_path, {"config.xml": "<image/>", "other.kiwi": "<image/>"})
    assert descriptions.find_description_file(tmp_path) == tmp_path / "config.xml"


def test_a_single_kiwi_file_is_found(tmp_path: Path) -> None:
    write(tmp_path, {"appliance.kiwi": "<image/>", "config.sh": "true\n"})
    assert descriptions.find_description_file(tmp_path) == tmp_path / "appliance.kiwi"


def test_several_kiwi_files_are_an_error(tmp_path: Path) -> None:
    write(tmp_path, {"a.kiwi": "<image/>", "b.kiwi": "<image/>"})
    with pytest.raises(BuildError, match=r"several KIWI descriptions \(a.kiwi, b.kiwi\)"):
        descriptions.find_description_file(tmp_path)


def test_no_description_file_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, {"config.sh": "true\n"})
    with pytest.raises(BuildError, match=r"no KIWI description \(config.xml or <name>.kiwi\)"):
        descriptions.find_description_file(tmp_path)


def test_a_description_one_level_down_is_pointed_at(tmp_path: Path) -> None:
    write(tmp_path, {"mine/config.xml": "<image/>"})
    with pytest.raises(BuildError, match=r"found mine/config.xml: pack the directory's contents"):
        descriptions.find_description_file(tmp_path)


# -- template values --------------------------------------------------------------------------


def test_host_mirror_comes_from_the_environment_first(tmp_path: Path) -> None:
    write(tmp_path, {"sources.list": "deb http://apt-sources.example/debian bookworm main\n"})
    environ = {"KILN_DEBIAN_MIRROR": "http://env.example/debian/"}
    assert descriptions.host_template(environ, tmp_path) == {
        "kiln_debian_mirror": "http://env.example/debian"
    }


def test_host_mirror_comes_from_the_apt_sources(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "sources.list.d/debian.sources": (
                "Types: deb\nURIs: http://security.example/debian-security\n"
                "Suites: bookworm-security\nComponents: main\n\n"
                "Types: deb\nURIs: http://deb.example/debian/\nSuites: bookworm\n"
                "Components: main\n"
            )
        },
    )
    assert descriptions.host_template({}, tmp_path) == {
        "kiln_debian_mirror": "http://deb.example/debian"
    }


def test_no_host_mirror_means_no_host_value(tmp_path: Path) -> None:
    assert descriptions.host_template({}, tmp_path) == {}


def test_user_values_win_over_host_values() -> None:
    merged = descriptions.merged_template({"kiln_debian_mirror": "http://mine/debian"}, HOST)
    assert merged == {"kiln_debian_mirror": "http://mine/debian"}
    assert descriptions.merged_template({"A": "1"}, HOST) == {**HOST, "A": "1"}


# -- substitution -----------------------------------------------------------------------------


def test_every_text_file_is_filled(tmp_path: Path) -> None:
    recipe = write(
        tmp_path / "recipe",
        {
            "config.xml": '<image name="{{ NAME }}"><source path="{{kiln_debian_mirror}}"/>',
            "config.sh": 'echo "{{HOSTNAME}}" > /etc/hostname\n',
            "root/etc/motd": "{{MOTD}}\n",
            "root/etc/untouched": "no placeholders, {{.Go}} syntax stays\n",
            "root/usr/share/blob.bin": b"\x00\x01{{UNDEFINED}}\xff",
        },
    )
    os.chmod(recipe / "config.sh", 0o755)
    os.symlink("motd", recipe / "root/etc/motd.link")
    template = {**HOST, "NAME": "img", "HOSTNAME": "node-1", "MOTD": "Hello $USER & {{NAME}}"}

    file = descriptions.render_description(recipe, tmp_path / "out", template)

    out = tmp_path / "out"
    assert file == out / "config.xml"
    assert file.read_text() == '<image name="img"><source path="http://mirror.example/debian"/>'
    assert (out / "config.sh").read_text() == 'echo "node-1" > /etc/hostname\n'
    assert (out / "config.sh").stat().st_mode & 0o777 == 0o755
    assert (out / "root/etc/motd").read_text() == "Hello $USER & {{NAME}}\n"  # filled once
    assert (out / "root/etc/untouched").read_text() == "no placeholders, {{.Go}} syntax stays\n"
    assert (out / "root/usr/share/blob.bin").read_bytes() == b"\x00\x01{{UNDEFINED}}\xff"
    assert os.readlink(out / "root/etc/motd.link") == "motd"
    assert (recipe / "root/etc/motd").read_text() == "{{MOTD}}\n"  # the recipe is left alone


def test_rendering_again_replaces_the_earlier_copy(tmp_path: Path) -> None:
    recipe = write(tmp_path / "recipe", {"config.xml": "<image>{{A}}</image>"})
    descriptions.render_description(recipe, tmp_path / "out", {"A": "1"})
    (recipe / "config.xml").write_text("<image>{{A}}{{A}}</image>")
    assert descriptions.render_description(recipe, tmp_path / "out", {"A": "2"}).read_text() == (
        "<image>22</image>"
    )


def test_an_unknown_placeholder_names_the_key_and_the_file(tmp_path: Path) -> None:
    recipe = write(
        tmp_path / "recipe",
        {"config.xml": "<image>{{A}}</image>", "root/etc/motd": "{{ MOTD }} {{A}}\n"},
    )
    with pytest.raises(BuildError) as caught:
        descriptions.render_description(recipe, tmp_path / "out", {"A": "1"})
    message = str(caught.value)
    assert "root/etc/motd uses template key(s) MOTD" in message
    assert "template_dictionary" in message
    assert not (tmp_path / "out").exists()  # nothing is written when a file cannot be filled


def test_an_unresolvable_host_mirror_says_where_to_set_one(tmp_path: Path) -> None:
    recipe = write(tmp_path / "recipe", {"config.xml": DESCRIPTION})
    with pytest.raises(BuildError, match=r"no Debian package mirror is configured on the build"):
        descriptions.load_description(recipe, {})


# -- reading the description ------------------------------------------------------------------


def test_repositories_used_for_the_build(tmp_path: Path) -> None:
    recipe = write(tmp_path, {"config.xml": DESCRIPTION})
    description = descriptions.load_description(recipe, HOST)

    assert description.package_manager == "apt"
    uris = [repo.uri for repo in description.repositories]
    # imageonly and unselected-profile repositories are not used to build
    assert uris == [
        "http://mirror.example/debian",
        "http://ports.example/debian",
        "http://flat.example/repo/",
        "https://rpm.example/repo",
        "obs://Debian:12/standard",
    ]
    mirror, ports, flat, rpm, obs = description.repositories
    assert (mirror.distribution, mirror.components, mirror.arches) == (
        "bookworm",
        ("main", "contrib"),
        (),
    )
    assert ports.arches == ("aarch64",)
    assert [repo.uri for repo in description.repositories_for("x86_64")] == [
        "http://mirror.example/debian",
        "http://flat.example/repo/",
        "https://rpm.example/repo",
        "obs://Debian:12/standard",
    ]
    assert mirror.index_url() == "http://mirror.example/debian/dists/bookworm/Release"
    assert flat.index_url() == "http://flat.example/repo/Release"
    assert rpm.index_url() == "https://rpm.example/repo/repodata/repomd.xml"
    assert obs.index_url() is None


def test_a_suite_without_the_arch_or_a_component_is_a_problem(tmp_path: Path) -> None:
    recipe = write(tmp_path, {"config.xml": DESCRIPTION})
    mirror = descriptions.load_description(recipe, HOST).repositories[0]
    release = "Suite: stable\nArchitectures: amd64 arm64\nComponents: main contrib non-free\n"
    assert mirror.index_problem(release, "x86_64") is None
    assert "has no arm64 packages" in (
        mirror.index_problem("Architectures: amd64\nComponents: main contrib\n", "aarch64") or ""
    )
    assert "component(s) contrib not in suite bookworm" in (
        mirror.index_problem("Architectures: amd64\nComponents: main\n", "x86_64") or ""
    )


def test_invalid_xml_is_named(tmp_path: Path) -> None:
    recipe = write(tmp_path, {"appliance.kiwi": "<image><preferences></image>"})
    with pytest.raises(BuildError, match=r"appliance.kiwi is not valid XML: mismatched tag"):
        descriptions.load_description(recipe, {})


def test_a_repository_without_a_source_is_named(tmp_path: Path) -> None:
    recipe = write(tmp_path, {"config.xml": '<image><repository type="apt-deb"/></image>'})
    with pytest.raises(BuildError, match=r"a <repository> has no <source path=...>"):
        descriptions.load_description(recipe, {})


@pytest.mark.parametrize(
    ("types", "problem"),
    [
        ('<type image="kis" filesystem="squashfs" archive="false"/>', None),
        ('<type image="oem" filesystem="ext4"/>', "it has no kis build type (its types: oem)"),
        ('<type image="kis" filesystem="ext4" archive="false"/>', 'filesystem="ext4"'),
        ('<type image="kis" filesystem="squashfs"/>', 'add archive="false"'),
        (
            '<type image="kis" filesystem="squashfs" archive="false" compressed="true"/>',
            'drop compressed="true"',
        ),
        (
            '<type image="kis" filesystem="ext4" archive="false"/>'
            '<type image="kis" filesystem="squashfs" archive="0" primary="true"/>',
            None,
        ),
    ],
)
def test_the_kis_type_is_checked(tmp_path: Path, types: str, problem: str | None) -> None:
    recipe = write(tmp_path, {"config.xml": f"<image><preferences>{types}</preferences></image>"})
    found = descriptions.load_description(recipe, {}).kis_problem()
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_the_example_is_a_kis_description_with_template_values(tmp_path: Path) -> None:
    meta = json.loads((EXAMPLE / "recipe.json").read_text())
    assert meta["recipe_type"] == "kiwi-ng"
    template = {item["key"]: item["value"] for item in meta["template_dictionary"]}
    out = tmp_path / "out"
    file = descriptions.render_description(EXAMPLE, out, {**HOST, **template})
    description = descriptions.parse_description(file.read_text(), file)
    assert description.kis_problem() is None
    assert [repo.index_url() for repo in description.repositories_for("x86_64")] == [
        "http://mirror.example/debian/dists/bookworm/Release"
    ]
    assert template["HOSTNAME"] in (out / "config.sh").read_text()
    assert (out / "root/etc/motd").read_text() == template["MOTD"] + "\n"
    assert f"127.0.1.1\t{template['HOSTNAME']}\n" in (out / "root/etc/hosts").read_text()
