"""Recipe directories and build contexts that the builder backend tests share."""

from __future__ import annotations

from pathlib import Path

from builders.backends import debian_recipe as recipes
from builders.backends.base import BuildContext


def write_recipe(directory: Path, text: str, files: dict[str, bytes] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "recipe.yaml").write_text(text)
    for name, data in (files or {}).items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)
    return directory


def load(tmp_path: Path, text: str, template: dict[str, str] | None = None) -> recipes.Recipe:
    return recipes.load_recipe(write_recipe(tmp_path / "recipe", text), template or {})


def context(tmp_path: Path, recipe_dir: Path, **overrides: object) -> BuildContext:
    fields: dict[str, object] = {
        "job_id": "job-1",
        "arch": "x86_64",
        "recipe_type": "kiln-debian",
        "recipe_dir": recipe_dir,
        "work_dir": tmp_path / "work",
        "out_dir": tmp_path / "out",
        "template": {},
        "source_date_epoch": 1700000000,
        "image_root_archive_name": "rootfs",
        "log": lambda line: None,
    }
    fields.update(overrides)
    return BuildContext(**fields)  # type: ignore[arg-type]
