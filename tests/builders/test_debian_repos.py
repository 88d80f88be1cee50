"""Fast tests of the recipe fields for Composer-made recipes: ``repositories``, ``groups`` and
``disk.min_size`` (parsing, every error a user can cause, the apt sources, the Release checks of
the extra repositories against a local HTTP server)."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from builders.backends import debian_recipe as recipes
from builders.backends import debian_repos as repos
from builders.backends import debian_script as scripts
from builders.backends.base import BuildError
from builders.backends.debian import DebianBackend, _mmdebstrap_command
from tests.builders.helpers import context, load, serve_files, write_recipe

S = "suite: bookworm\n"
K = "suite: bookworm\nkernel: true\n"
KEY = (
    "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n"
    "mQINBGAEHQwBEAC7MhpIQlLicwR8tmMH0yFkMIsqIbfudnBCuV043sSSSdUT/XjA\n"
    "NRBgnvsJ0RanPz6R8bF5Z3u0GqMk2eAXrMJnQl6bYeb1bLqvU8WXXqmNY5zx5Q==\n"
    "=fDnC\n"
    "-----END PGP PUBLIC KEY BLOCK-----\n"
)


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(BuildError) as caught:
        load(tmp_path, text)
    return str(caught.value)


def key_yaml(key: str) -> str:
    return "    key: |\n" + "".join(f"      {line}\n" for line in key.splitlines())


# --- repositories ------------------------------------------------------------------------------


def test_no_repositories_groups_or_min_size_by_default(tmp_path: Path) -> None:
    recipe = load(tmp_path, K + "disk: {}\n")
    assert (recipe.repositories, recipe.groups) == ((), ())
    assert recipe.disk == recipes.Disk(formats=("qcow2",), size=None, min_size=None)


def test_repositories_get_defaults(tmp_path: Path) -> None:
    text = S + "repositories:\n  - url: http://extra.example/debian/\n"
    text += "  - url: https://other.example/apt\n    suite: stable\n    components: [main, ex]\n"
    text += key_yaml(KEY)
    recipe = load(tmp_path, text)
    assert recipe.repositories == (
        repos.Repository("http://extra.example/debian", "bookworm", ("main",), None),
        repos.Repository("https://other.example/apt", "stable", ("main", "ex"), KEY),
    )
    assert recipe.repositories[1].release_url == "https://other.example/apt/dists/stable/Release"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("http://x/debian", "repositories[0] must be a mapping (url, suite, components, key)"),
        ("{suite: bookworm}", "recipe.yaml must set repositories[0].url (an http:// or https"),
        ("{url: ftp://x/debian}", "repositories[0].url must be an http:// or https:// URL"),
        ("{url: 'http://x/a b'}", "repositories[0].url must be an http:// or https:// URL"),
        ("{url: 'http://x/[a]'}", "repositories[0].url must be an http:// or https:// URL"),
        ("{url: 7}", "repositories[0].url must be a string, got int 7"),
        ("{url: 'http://x/d', suite: Bookworm}", "repositories[0].suite must be a suite name"),
        ("{url: 'http://x/d', components: main}", "repositories[0].components must be a list"),
        ("{url: 'http://x/d', components: [Main]}", "repositories[0].components[0] 'Main' is not"),
        ("{url: 'http://x/d', key: 'not a key'}", "repositories[0].key must be an ASCII-armored"),
        ("{url: 'http://x/d', key: 12}", "repositories[0].key must be a string, got int 12"),
        ("{url: 'http://x/d', keys: x}", "unknown field 'keys' in repositories[0] (did you mean"),
    ],
)
def test_bad_repository_names_the_problem(tmp_path: Path, entry: str, expected: str) -> None:
    assert expected in error_of(tmp_path, S + f"repositories: [{entry}]\n")


def test_repositories_must_be_a_list(tmp_path: Path) -> None:
    message = error_of(tmp_path, S + "repositories: {url: http://x/debian}\n")
    assert message.startswith("repositories must be a list")


def test_private_or_broken_keys_are_refused(tmp_path: Path) -> None:
    private = KEY.replace("PUBLIC KEY", "PRIVATE KEY")
    text = S + "repositories:\n  - url: http://x/d\n" + key_yaml(private)
    assert "repositories[0].key is a private key" in error_of(tmp_path, text)
    no_end = "\n".join(KEY.splitlines()[:-1])
    text = S + "repositories:\n  - url: http://x/d\n" + key_yaml(no_end)
    assert "repositories[0].key must be an ASCII-armored OpenPGP public key" in error_of(
        tmp_path, text
    )
    one_line = KEY.replace("\n", " ")  # a key whose lines YAML folded into one
    text = S + f"repositories: [{{url: 'http://x/d', key: '{one_line}'}}]\n"
    assert "use a YAML block (key: |)" in error_of(tmp_path, text)


def test_a_repository_listed_twice_is_refused(tmp_path: Path) -> None:
    text = S + "repositories: [{url: 'http://x/d/'}, {url: 'http://x/d', components: [contrib]}]\n"
    message = error_of(tmp_path, text)
    assert "repositories[1] repeats repositories[0] (same url and suite)" in message


def test_the_mirrors_own_suite_is_not_an_extra_repository(tmp_path: Path) -> None:
    recipe = load(tmp_path, S + "repositories: [{url: 'http://m.example/debian/'}]\n")
    with pytest.raises(BuildError, match=r"repositories\[0\] is the package mirror's own suite"):
        repos.check_against_mirror(recipe.repositories, "http://m.example/debian", "bookworm")
    repos.check_against_mirror(recipe.repositories, "http://other.example/debian", "bookworm")


def test_apt_sources_for_mmdebstrap_and_for_the_image(tmp_path: Path) -> None:
    text = S + "repositories:\n  - url: http://a.example/debian\n    suite: bookworm-updates\n"
    text += key_yaml(KEY) + "  - url: http://b.example/apt\n    components: [main, extra]\n"
    recipe = load(tmp_path, text)
    sources = repos.apt_sources(recipe.repositories, tmp_path / "stage")
    staged = tmp_path / "stage" / "keyrings" / "kiln-extra-0.asc"
    assert sources.mmdebstrap_lines == (
        f"deb [signed-by={staged}] http://a.example/debian bookworm-updates main",
        "deb [trusted=yes] http://b.example/apt bookworm main extra",
    )
    assert staged.read_text() == KEY
    assert sources.keyrings == ((staged, "/etc/apt/keyrings/kiln-extra-0.asc"),)
    assert sources.image_list.splitlines()[1:] == [
        "deb [signed-by=/etc/apt/keyrings/kiln-extra-0.asc] http://a.example/debian "
        "bookworm-updates main",
        "deb [trusted=yes] http://b.example/apt bookworm main extra",
    ]
    command = _mmdebstrap_command(
        recipe, "amd64", "http://m/debian", tmp_path, tmp_path / "s", sources.mmdebstrap_lines
    )
    assert command[-3:] == ["http://m/debian", *sources.mmdebstrap_lines]
    assert repos.apt_sources((), tmp_path / "none") == repos.AptSources((), "", ())


def test_sources_part_moves_the_lines_into_the_image(tmp_path: Path) -> None:
    text = S + "repositories:\n  - url: http://a.example/debian\n" + key_yaml(KEY)
    recipe = load(tmp_path, text)
    sources = repos.apt_sources(recipe.repositories, tmp_path / "stage")
    script = scripts.customize_script(recipe, [], sources, tmp_path / "info")
    subprocess.run(["sh", "-n"], input=script.encode(), check=True)
    staged = sources.keyrings[0][0]
    assert f"put_file /etc/apt/keyrings/kiln-extra-0.asc 0644 root:root < {staged}" in script
    grep = next(line for line in script.splitlines() if "grep -v -x -F" in line)
    dropped = shlex.split(grep.split("grep -v -x -F", 1)[1].split("||")[0])
    assert dropped == ["-e", "", "-e", sources.mmdebstrap_lines[0]]
    assert script.index("kiln-extra.list") < script.index("say 'hostname")
    plain = scripts.customize_script(load(tmp_path, S), [], sources, tmp_path / "info")
    assert "kiln-extra.list" in plain  # the recipe has no repositories, but sources say so
    none = scripts.customize_script(load(tmp_path, S), [], repos.AptSources((), "", ()), tmp_path)
    assert "kiln-extra.list" not in none


# --- groups ------------------------------------------------------------------------------------


def test_groups_are_made_before_the_users(tmp_path: Path) -> None:
    recipe = load(tmp_path, S + "groups: [wheel, kiln-ops]\nusers: [{name: k, groups: [wheel]}]\n")
    assert recipe.groups == ("wheel", "kiln-ops")
    script = scripts.customize_script(recipe, [], repos.AptSources((), "", ()), tmp_path)
    subprocess.run(["sh", "-n"], input=script.encode(), check=True)
    assert 'if ! chroot "$root" getent group wheel >/dev/null; then' in script
    assert "groupadd --system kiln-ops || fail 'groups[1]: groupadd failed'" in script
    assert script.index("groupadd --system wheel") < script.index("useradd")


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        ("wheel", "groups must be a list"),
        ("[Wheel]", "groups[0] 'Wheel' is not valid: expected group names like wheel"),
        ("[wheel, '']", "groups[1] must be a non-empty string"),
        ("[wheel, 3]", "groups[1] must be a non-empty string (group names like wheel), got int 3"),
        ("[wheel, adm, wheel]", "groups lists 'wheel' twice"),
        ("[" + "g" * 33 + "]", "is not valid: expected group names"),
    ],
)
def test_bad_groups_name_the_problem(tmp_path: Path, groups: str, expected: str) -> None:
    assert expected in error_of(tmp_path, S + f"groups: {groups}\n")


def test_unknown_top_level_field_suggests_groups(tmp_path: Path) -> None:
    assert "did you mean 'groups'" in error_of(tmp_path, S + "group: [wheel]\n")
    assert "did you mean 'repositories'" in error_of(tmp_path, S + "repository: []\n")


# --- disk.min_size -----------------------------------------------------------------------------


def test_disk_min_size(tmp_path: Path) -> None:
    recipe = load(tmp_path, K + "disk: {min_size: 4G}\n")
    assert recipe.disk == recipes.Disk(formats=("qcow2",), size=None, min_size=4 << 30)


@pytest.mark.parametrize(
    ("disk", "expected"),
    [
        ("{size: 2G, min_size: 1G}", "disk.size and disk.min_size exclude each other"),
        ("{min_size: 2}", "disk.min_size must be a size with a unit (K, M, G or T, binary)"),
        ("{min_size: 100M}", "disk.min_size must be between 256M and 16T, got '100M'"),
        ("{min_size: 17T}", "disk.min_size must be between 256M and 16T"),
        ("{minsize: 2G}", "unknown field 'minsize' in disk (did you mean 'min_size'?)"),
    ],
)
def test_bad_min_size_names_the_problem(tmp_path: Path, disk: str, expected: str) -> None:
    assert expected in error_of(tmp_path, K + f"disk: {disk}\n")


# --- waiting for the extra repositories (local HTTP server) -------------------------------------


@pytest.fixture()
def server() -> Iterator[str]:
    releases = {
        "/debian/dists/bookworm/Release": b"Architectures: amd64\nComponents: main\n",
        "/extra/dists/bookworm/Release": b"Architectures: amd64\nComponents: main ex\n",
    }
    with serve_files(releases) as url:
        yield url


def _wait(tmp_path: Path, server: str, repositories: str, wait: float = 5.0) -> list[str]:
    text = f"suite: bookworm\nmirror: {server}/debian\nrepositories: {repositories}\n"
    lines: list[str] = []
    ctx = context(tmp_path, write_recipe(tmp_path / "recipe", text), log=lines.append)
    DebianBackend(repo_wait_seconds=wait).wait_for_repos(ctx)
    return lines


def test_wait_for_repos_checks_each_repository(tmp_path: Path, server: str) -> None:
    lines = _wait(tmp_path, server, f"[{{url: '{server}/extra', components: [ex]}}]")
    assert f"I: kiln: repositories[0]: {server}/extra has suite bookworm" in lines


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{url: 'S/extra', suite: trixie}", r"repositories\[0\]: suite 'trixie' does not exist"),
        ("{url: 'S/extra', components: [non-free]}", r"repositories\[0\]: component\(s\) non-free"),
        ("{url: 'S/debian'}", r"repositories\[0\] is the package mirror's own suite"),
    ],
)
def test_wait_for_repos_names_the_repository(
    tmp_path: Path, server: str, entry: str, expected: str
) -> None:
    with pytest.raises(BuildError, match=expected):
        _wait(tmp_path, server, f"[{entry.replace('S/', server + '/')}]", wait=60)


def test_wait_for_repos_gives_up_on_a_dead_repository(tmp_path: Path, server: str) -> None:
    dead = "http://127.0.0.1:9/extra"  # discard port: nothing listens
    with pytest.raises(BuildError, match=r"repositories\[0\]: repository .* did not answer"):
        _wait(tmp_path, server, f"[{{url: '{dead}'}}]", wait=1)
