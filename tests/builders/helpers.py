"""Recipe directories and build contexts that the builder backend tests share."""

from __future__ import annotations

import contextlib
import http.server
import json
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

from builders.backends import debian_recipe as recipes
from builders.backends.base import BuildContext

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "recipes"


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


def unpack_example(name: str, base: Path) -> tuple[Path, dict[str, str]]:
    """Make the archive the way docs/recipes.md says, unpack it; return it and the template."""
    archive = base / f"{name}.tar.gz"
    subprocess.run(
        ["tar", "-czf", archive, "-C", EXAMPLES / name, "--exclude", "recipe.json", "."],
        check=True,
    )
    recipe_dir = base / "recipe"
    with tarfile.open(archive) as tar:
        tar.extractall(recipe_dir, filter="data")
    meta = json.loads((EXAMPLES / name / "recipe.json").read_text())
    return recipe_dir, {item["key"]: item["value"] for item in meta.get("template_dictionary", [])}


@contextlib.contextmanager
def serve_files(files: dict[str, bytes]) -> Iterator[str]:
    """A local HTTP server answering GET ``path`` with ``files[path]`` (else 404), e.g. a
    package mirror's Release files; yields its base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path in files:
                self.send_response(200)
                self.end_headers()
                self.wfile.write(files[self.path])
            else:
                self.send_error(404)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
