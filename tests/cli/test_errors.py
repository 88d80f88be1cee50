"""Every failure a user can cause, as one `kiln: error:` line and the exit code scripts rely on:
a refused token (3) on each face, a Kiln that is not running (5), input that cannot be used
(2), and each face's own error format (IMS, composer, Glance, Cachito, OMPS) read for its
message (6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.runner import KilnCommand, assert_fails
from tests.omps import operators as ops
from tests.served import Served

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def files(tmp_path: Path) -> dict[str, str]:
    """A recipe directory, a compose request, a disk image and an operator zip to name."""
    recipe = tmp_path / "recipe"
    recipe.mkdir(exist_ok=True)
    (recipe / "recipe.json").write_text(
        json.dumps({"name": "r", "recipe_type": "kiln-debian", "linux_distribution": "debian12"})
    )
    (recipe / "recipe.yaml").write_text("suite: bookworm\n")
    compose = tmp_path / "compose.json"
    compose.write_text(json.dumps({"distribution": "debian-12", "image_requests": []}))
    disk = tmp_path / "disk.raw"
    disk.write_bytes(b"x" * 100)
    operator = tmp_path / "operator.zip"
    operator.write_bytes(ops.flat_operator())
    return {"recipe": str(recipe), "compose": str(compose), "disk": str(disk), "zip": str(operator)}


#: a command of every face, by what it needs of ``files``
COMMANDS = {
    "build": lambda f: ["build", f["recipe"]],
    "compose": lambda f: ["compose", f["compose"]],
    "image upload": lambda f: ["image", "upload", f["disk"], "--name", "d"],
    "image list": lambda f: ["image", "list"],
    "image show": lambda f: ["image", "show", "some-id"],
    "image download": lambda f: ["image", "download", "some-id"],
    "sources": lambda f: ["sources", "https://git.example/app.git", COMMIT, "--pm", "pip"],
    "jobs list": lambda f: ["jobs", "list"],
    "logs": lambda f: ["logs", "some-id"],
    "cancel": lambda f: ["cancel", "some-id"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_refused_token_is_an_auth_failure(
    bare_kiln: KilnCommand, served: Served, tmp_path: Path, command: str
) -> None:
    args = COMMANDS[command](files(tmp_path))
    ran = bare_kiln(*args, KILN_URL=served.url, KILN_TOKEN="forged.token.value")
    assert_fails(ran, 3, "401 Unauthorized", "(the token from KILN_TOKEN was refused)")


def test_no_token_at_all_says_how_to_get_one(bare_kiln: KilnCommand, served: Served) -> None:
    ran = bare_kiln("image", "list", KILN_URL=served.url)
    assert_fails(ran, 3, "401 Unauthorized", "no token: run `kiln login")


def test_omps_relays_the_registrys_refusal_of_the_token(
    bare_kiln: KilnCommand, served: Served, tmp_path: Path
) -> None:
    args = ["operator", "push", files(tmp_path)["zip"], "acme"]
    ran = bare_kiln(*args, KILN_URL=served.url, KILN_TOKEN="forged.token.value")
    assert_fails(ran, 3, "403 Forbidden", "Invalid credentials")  # OMPS relays the registry's


@pytest.mark.parametrize("command", sorted([*COMMANDS, "operator push"]))
def test_a_kiln_that_is_not_running_is_unreachable(
    bare_kiln: KilnCommand, closed_url: str, tmp_path: Path, command: str
) -> None:
    given = files(tmp_path)
    args = ["operator", "push", given["zip"], "acme"] if command == "operator push" else []
    ran = bare_kiln(*(args or COMMANDS[command](given)), KILN_URL=closed_url, KILN_TOKEN="t")
    line = assert_fails(ran, 5)
    assert line == f"kiln: error: cannot reach Kiln at {closed_url} (is `make up` running?)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["build"], "Missing argument 'RECIPE_DIR'"),
        (["build", "{tmp}/nowhere"], "Directory '{tmp}/nowhere' does not exist"),
        (["build", "{tmp}/empty"], "{tmp}/empty/recipe.json not found"),
        (["build", "{tmp}/broken"], "{tmp}/broken/recipe.json is not valid JSON"),
        (["build", "{tmp}/recipe", "--arch", "sparc"], "'sparc' is not one of"),
        (["compose", "{tmp}/nowhere.json"], "File '{tmp}/nowhere.json' does not exist"),
        (["compose", "{tmp}/broken/recipe.json"], "is not valid JSON"),
        (["sources", "https://git.example/a.git"], "Missing argument 'REF'"),
        (["sources", "https://git.example/a.git", COMMIT, "--pm", "maven"], "'maven'"),
        (["image", "download"], "Missing argument 'IMAGE_ID'"),
        (["image", "frobnicate"], "No such command 'frobnicate'"),
        (["cancel"], "Missing argument 'JOB_ID'"),
        (["--output", "yaml", "jobs", "list"], "'yaml' is not one of"),
        (["nonsense"], "No such command 'nonsense'"),
    ],
)
def test_bad_input_is_a_usage_error(
    kiln_cmd: KilnCommand, tmp_path: Path, args: list[str], message: str
) -> None:
    files(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "recipe.json").write_text("{not json")
    filled = [a.replace("{tmp}", str(tmp_path)) for a in args]
    line = assert_fails(kiln_cmd(*filled), 2, message.replace("{tmp}", str(tmp_path)))
    assert "--help" in line or "recipe.json" in line


def test_ims_problem_details_are_shown(kiln_cmd: KilnCommand, tmp_path: Path) -> None:
    recipe = tmp_path / "incomplete"
    recipe.mkdir()
    (recipe / "recipe.json").write_text(json.dumps({"name": "no-type"}))
    ran = kiln_cmd("build", str(recipe))
    assert_fails(ran, 6, "422 Unprocessable Entity", "recipe_type: Missing data")


def test_composer_errors_are_shown(kiln_cmd: KilnCommand, tmp_path: Path) -> None:
    request = tmp_path / "compose.json"
    request.write_text(json.dumps({"distribution": "plan9", "image_requests": []}))
    ran = kiln_cmd("compose", str(request))
    assert_fails(ran, 6, "400 Bad Request", "Unsupported distribution", "plan9")


def test_cachito_errors_are_shown(kiln_cmd: KilnCommand) -> None:
    ran = kiln_cmd("sources", "http://127.0.0.1:9/app.git", COMMIT, "--pm", "pip")
    assert_fails(ran, 6, "400 Bad Request", 'The "repo" URL cannot be fetched from')
    ran = kiln_cmd("sources", "https://git.example/app.git", "main", "--pm", "pip")
    assert_fails(ran, 6, "400 Bad Request", "'main'")


def test_glance_errors_are_shown(kiln_cmd: KilnCommand) -> None:
    assert_fails(kiln_cmd("image", "show", "no-such-image"), 4, "No image found with ID")


def test_help_and_version_succeed(bare_kiln: KilnCommand) -> None:
    for args in (["--help"], ["build", "--help"], ["--version"]):
        ran = bare_kiln(*args)
        assert ran.code == 0 and ran.stderr == "", ran
    assert "kiln" in bare_kiln("--version").stdout
