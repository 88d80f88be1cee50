"""Fast tests of staging the recipe's files and of the customize script (no mmdebstrap)."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from builders.backends import debian_recipe as recipes
from builders.backends import debian_repos as repos
from builders.backends import debian_script as scripts
from builders.backends.base import BuildError
from tests.builders.helpers import write_recipe


def test_stage_files_templates_text_only(tmp_path: Path) -> None:
    binary = b"\x00\x01{{MOTD}}"
    recipe_dir = write_recipe(
        tmp_path / "recipe",
        """suite: bookworm
files:
  - {src: motd, dest: /etc/motd}
  - {src: blob, dest: /blob}
  - {src: raw, dest: /raw, template: false}
""",
        {"motd": b"Hi {{MOTD}}!\n", "blob": binary, "raw": b"{{MOTD}}"},
    )
    recipe = recipes.load_recipe(recipe_dir, {"MOTD": "there"})
    staged = scripts.stage_files(recipe, {"MOTD": "there"}, tmp_path / "stage")
    assert [path.read_bytes() for path in staged] == [b"Hi there!\n", binary, b"{{MOTD}}"]


def test_stage_files_names_missing_key_and_file(tmp_path: Path) -> None:
    recipe_dir = write_recipe(
        tmp_path / "recipe",
        "suite: bookworm\nfiles: [{src: files/motd, dest: /etc/motd}]\n",
        {"files/motd": b"{{MOTD}}"},
    )
    recipe = recipes.load_recipe(recipe_dir, {})
    with pytest.raises(BuildError, match=r"files\[0\] \(files/motd\) uses template key\(s\) MOTD"):
        scripts.stage_files(recipe, {}, tmp_path / "stage")


def test_customize_script_is_valid_shell_and_quotes_user_text(tmp_path: Path) -> None:
    recipe_dir = write_recipe(
        tmp_path / "recipe",
        """suite: bookworm
users: [{name: kiln, groups: [sudo], ssh_authorized_keys: ["ssh-ed25519 AAAA it's $(me)"]}]
files: [{src: f, dest: "/etc/x $(touch /tmp/pwned)"}]
customize: ["echo 'a' > /b; false"]
""",
        {"f": b"x"},
    )
    recipe = recipes.load_recipe(recipe_dir, {})
    staged = scripts.stage_files(recipe, {}, tmp_path / "stage")
    script = scripts.customize_script(recipe, staged, repos.AptSources((), "", ()), tmp_path)
    subprocess.run(["sh", "-n"], input=script.encode(), check=True)
    put_line = next(line for line in script.splitlines() if line.startswith("put_file '/etc/x"))
    assert shlex.split(put_line.removesuffix(" \\"))[1] == "/etc/x $(touch /tmp/pwned)"
    assert "useradd --create-home --shell /bin/bash --groups sudo kiln" in script
    assert "'ssh-ed25519 AAAA it'\"'\"'s $(me)'" in script
    assert "rm -f /etc/ssh/ssh_host_*_key" in script
    assert scripts.SSH_UNIT_PATH in script
