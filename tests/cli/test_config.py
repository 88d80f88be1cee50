"""Where `kiln` finds its Kiln and token: `kiln login` (saved, owner-only, then used), the
environment, the flags, the local stack's stack.json, and their precedence (flags > env >
login > stack.json), each shown by a source that works beside one that cannot."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.cli.runner import KilnCommand, assert_fails
from tests.served import Served

BAD_TOKEN = "not-a-token"


def stack_file(directory: Path, url: str, token: str) -> Path:
    """A stack.json as `make up` writes it (the fields `kiln` reads, and some it does not)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "stack.json"
    body = {"api_url": url, "ims_url": f"{url}/apis/ims", "tokens": {"user": token, "admin": "x"}}
    path.write_text(json.dumps(body))
    return path


def test_login_checks_the_token_saves_it_for_the_owner_only_and_is_used(
    bare_kiln: KilnCommand, served: Served
) -> None:
    token = served.kiln.token()
    ran = bare_kiln("login", "--url", served.url + "/", "--token", token)
    assert ran.code == 0, ran
    assert str(bare_kiln.config_file) in ran.stdout
    saved = json.loads(bare_kiln.config_file.read_text())
    assert saved == {"url": served.url, "token": token}
    assert stat.S_IMODE(bare_kiln.config_file.stat().st_mode) == 0o600

    listed = bare_kiln("jobs", "list", "-o", "json")
    assert listed.code == 0, listed
    assert listed.json()["builds"] == []


def test_login_with_a_refused_token_saves_nothing(bare_kiln: KilnCommand, served: Served) -> None:
    ran = bare_kiln("login", "--url", served.url, "--token", BAD_TOKEN)
    assert_fails(ran, 3, "401 Unauthorized")
    assert not bare_kiln.config_file.exists()


def test_login_json_output_and_a_config_file_named_by_kiln_config(
    bare_kiln: KilnCommand, served: Served, tmp_path: Path
) -> None:
    config = tmp_path / "elsewhere" / "kiln.json"
    ran = bare_kiln(
        "login", "--url", served.url, "--token", "t", "--no-verify", "-o", "json",
        KILN_CONFIG=str(config),
    )  # fmt: skip
    assert ran.code == 0, ran
    assert ran.json() == {"url": served.url, "config": str(config), "verified": False}
    assert json.loads(config.read_text())["token"] == "t"
    assert not bare_kiln.config_file.exists()


def test_the_environment_beats_the_login(
    bare_kiln: KilnCommand, served: Served, closed_url: str
) -> None:
    assert bare_kiln("login", "--url", served.url, "--token", served.kiln.token()).code == 0
    assert bare_kiln("jobs", "list").code == 0
    assert_fails(bare_kiln("jobs", "list", KILN_URL=closed_url), 5, closed_url)
    assert_fails(bare_kiln("jobs", "list", KILN_TOKEN=BAD_TOKEN), 3, "token from KILN_TOKEN")


def test_the_flags_beat_the_environment(
    bare_kiln: KilnCommand, served: Served, closed_url: str
) -> None:
    token = served.kiln.token()
    good = {"KILN_URL": served.url, "KILN_TOKEN": token}
    ran = bare_kiln("--url", served.url, "jobs", "list", KILN_URL=closed_url, KILN_TOKEN=token)
    assert ran.code == 0, ran
    ran = bare_kiln("--token", BAD_TOKEN, "jobs", "list", **good)
    assert_fails(ran, 3, "token from --token")
    flagged = bare_kiln("--url", served.url, "--token", served.kiln.token(), "jobs", "list")
    assert flagged.code == 0, flagged


def test_stack_json_in_the_current_directory_or_kiln_state_dir(
    bare_kiln: KilnCommand, served: Served, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    stack_file(project / ".kiln", served.url, served.kiln.token())
    ran = bare_kiln("jobs", "list", "-o", "json", cwd=project)
    assert ran.code == 0, ran
    assert ran.json() == {"builds": [], "next_marker": None}
    inside = project / "examples" / "recipes"  # anywhere in the checkout, as git finds .git
    inside.mkdir(parents=True)
    assert bare_kiln("jobs", "list", cwd=inside).code == 0

    state_dir = tmp_path / "state"
    stack_file(state_dir, served.url, served.kiln.token())
    assert bare_kiln("jobs", "list", KILN_STATE_DIR=str(state_dir)).code == 0
    stack_file(state_dir, served.url, BAD_TOKEN)
    ran = bare_kiln("jobs", "list", KILN_STATE_DIR=str(state_dir))
    assert_fails(ran, 3, "token from stack.json")


def test_the_login_beats_stack_json(bare_kiln: KilnCommand, served: Served, tmp_path: Path) -> None:
    project = tmp_path / "project"
    stack_file(project / ".kiln", served.url, served.kiln.token())
    saved = bare_kiln("login", "--url", served.url, "--token", BAD_TOKEN, "--no-verify")
    assert saved.code == 0, saved
    assert_fails(bare_kiln("jobs", "list", cwd=project), 3, "token from the saved login")


def test_nothing_configured_says_how_to_configure(bare_kiln: KilnCommand) -> None:
    assert_fails(bare_kiln("jobs", "list"), 2, "no Kiln URL", "kiln login", "KILN_URL")


def test_a_broken_saved_login_or_stack_file_is_named(
    bare_kiln: KilnCommand, tmp_path: Path
) -> None:
    bare_kiln.config_file.parent.mkdir(parents=True)
    bare_kiln.config_file.write_text("{not json")
    assert_fails(bare_kiln("jobs", "list"), 2, "saved login", "not valid JSON")
    bare_kiln.config_file.unlink()
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "stack.json").write_text("[]")
    ran = bare_kiln("jobs", "list", KILN_STATE_DIR=str(state_dir))
    assert_fails(ran, 2, "stack file", "not a JSON object")


def test_login_refuses_a_url_that_is_not_http(bare_kiln: KilnCommand) -> None:
    ran = bare_kiln("login", "--url", "ftp://kiln.example", "--token", "t")
    assert_fails(ran, 2, "must start with http:// or https://")


def test_login_needs_both_url_and_token(bare_kiln: KilnCommand) -> None:
    assert_fails(bare_kiln("login", "--url", "http://x"), 2, "Missing option '--token'")
