"""A pip package's own name and version, read statically as upstream Cachito and Hermeto do:
``pyproject.toml`` ``[project]``, then the ``setup()`` call of ``setup.py`` (through its syntax
tree, literal values or variables assigned literals), then ``setup.cfg`` ``[metadata]``
(``attr:`` and ``file:`` versions included). Nothing of the package is ever run. With no name
anywhere, the repository's name (and the package's path) stands in, as Hermeto does."""

from __future__ import annotations

import ast
import configparser
import re
import tomllib
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

Log = Callable[[str], None]


def _inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` if it stays inside ``root`` (symlinks resolved), else None."""
    path = (root / relative).resolve()
    return path if path.is_relative_to(root.resolve()) else None


def _version_text(value: Any) -> str | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, (tuple, list)):
        value = ".".join(str(part) for part in value)
    text = str(value).strip()
    try:
        return str(Version(text))
    except InvalidVersion:
        return text or None


def _from_pyproject(package_dir: Path) -> tuple[str | None, str | None]:
    path = package_dir / "pyproject.toml"
    if not path.is_file():
        return None, None
    try:
        project = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError):
        return None, None
    if not isinstance(project, dict):
        return None, None
    name = project.get("name") if isinstance(project.get("name"), str) else None
    return name, _version_text(project.get("version"))


def _literal_assignments(tree: ast.AST, before_line: int) -> dict[str, Any]:
    """Names assigned a literal anywhere before ``before_line``; the last assignment wins."""
    found: dict[str, tuple[int, Any]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and node.lineno < before_line:
            for target in node.targets:
                if isinstance(target, ast.Name):
                    try:
                        value = ast.literal_eval(node.value)
                    except (ValueError, TypeError, SyntaxError, RecursionError):
                        continue
                    if target.id not in found or found[target.id][0] < node.lineno:
                        found[target.id] = (node.lineno, value)
    return {name: value for name, (_line, value) in found.items()}


def _is_setup_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Name) and func.id == "setup") or (
        isinstance(func, ast.Attribute)
        and func.attr == "setup"
        and isinstance(func.value, ast.Name)
        and func.value.id == "setuptools"
    )


def _from_setup_py(package_dir: Path) -> tuple[str | None, str | None]:
    path = package_dir / "setup.py"
    if not path.is_file():
        return None, None
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), "setup.py")
    except (SyntaxError, ValueError, UnicodeDecodeError, OSError):
        return None, None
    call = next((node for node in ast.walk(tree) if _is_setup_call(node)), None)
    if not isinstance(call, ast.Call):
        return None, None
    variables = _literal_assignments(tree, call.lineno)
    values: dict[str, Any] = {}
    for keyword in call.keywords:
        if keyword.arg not in ("name", "version"):
            continue
        try:
            values[keyword.arg] = ast.literal_eval(keyword.value)
        except (ValueError, TypeError, SyntaxError, RecursionError):
            if isinstance(keyword.value, ast.Name):
                values[keyword.arg] = variables.get(keyword.value.id)
    name = values.get("name")
    return (name if isinstance(name, str) and name else None), _version_text(values.get("version"))


def _attr_version(package_dir: Path, spec: str, package_dirs: dict[str, str]) -> Any:
    module_name, _, attribute = spec.rpartition(".")
    parts = [p for p in (module_name or "__init__").split(".") if p]
    if not parts or not all(re.fullmatch(r"[^\W\d]\w*", p) for p in parts):
        return None
    if parts[0] in package_dirs:
        relative = "/".join([package_dirs[parts[0]], *parts[1:]])
    else:
        relative = "/".join([package_dirs[""], *parts] if "" in package_dirs else parts)
    for candidate in (f"{relative}/__init__.py", f"{relative}.py"):
        path = _inside(package_dir, candidate)
        if path is not None and path.is_file():
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"), path.name)
            except (SyntaxError, ValueError, UnicodeDecodeError, OSError):
                return None
            return _literal_assignments(tree, 10**9).get(attribute)
    return None


def _from_setup_cfg(package_dir: Path) -> tuple[str | None, str | None]:
    path = package_dir / "setup.cfg"
    if not path.is_file():
        return None, None
    config = configparser.ConfigParser(interpolation=None)
    try:
        config.read_string(path.read_text(encoding="utf-8"))
    except (configparser.Error, UnicodeDecodeError, OSError):
        return None, None
    name = config.get("metadata", "name", fallback=None) or None
    version: Any = config.get("metadata", "version", fallback=None) or None
    if isinstance(version, str) and version.startswith("file:"):
        target = _inside(package_dir, version[5:].strip())
        version = (
            target.read_text(encoding="utf-8").strip() if target and target.is_file() else None
        )
    elif isinstance(version, str) and version.startswith("attr:"):
        raw = config.get("options", "package_dir", fallback="")
        items = raw.splitlines() if "\n" in raw else raw.split(",")
        package_dirs = {
            k.strip(): v.strip() for k, sep, v in (i.partition("=") for i in items) if sep
        }
        version = _attr_version(package_dir, version[5:].strip(), package_dirs)
    return name, _version_text(version)


def repository_name(repo_url: str, subpath: str) -> str:
    """The stand-in name: the repository's last path segment (and the package's path)."""
    path = urllib.parse.urlparse(repo_url).path or repo_url
    repo = path.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
    joined = "-".join(p for p in (repo, *subpath.split("/")) if p and p != ".")
    return canonicalize_name(joined).strip("-.") or "unnamed"


def package_metadata(
    package_dir: Path, repo_url: str, subpath: str, log: Log
) -> tuple[str, str | None]:
    """(name, version) of the package at ``package_dir``; version None when nothing says it."""
    name: str | None = None
    version: str | None = None
    for source, reader in (
        ("pyproject.toml", _from_pyproject),
        ("setup.py", _from_setup_py),
        ("setup.cfg", _from_setup_cfg),
    ):
        found_name, found_version = reader(package_dir)
        if found_name and not name:
            name = found_name
            log(f"I: pip: package name {name!r} from {source}")
        if found_version and not version:
            version = found_version
            log(f"I: pip: package version {version!r} from {source}")
        if name and version:
            break
    if not name:
        name = repository_name(repo_url, subpath)
        log(f"W: pip: no package name in pyproject.toml, setup.py or setup.cfg; using {name!r}")
    if not version:
        log("W: pip: could not resolve the package version")
    return name, version
