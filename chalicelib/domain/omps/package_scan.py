"""The package name of an OMPS push (omps-behaviour.md §5), and the org's suffix on it (§8).

Only the *top-level* ``*.yaml``/``*.yml`` files are read, in name order; the first one whose
mapping has a ``packageName`` key wins. A file that does not load -- an empty one too --
ends the scan with ``Failed to process yaml file /<name>``; none with the key:
``Could not find packageName in manifests.``

Files are read as upstream's loader reads them: a duplicate key is an error, and every scalar
is text (YAML 1.2 has no ``yes`` booleans; a name like ``1234`` is still a name).

With a ``package_name_suffix`` the name does not already end with, the package file is
rewritten with the suffixed name. Only the ``packageName`` line changes, so comments and the
rest of the file stay as they are; in the rare layout that edit cannot express (a flow
mapping, a value spread over lines), the file is dumped again, without its comments."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any

import yaml

from chalicelib.domain.omps.errors import PackageValidationError

KEY = "packageName"
#: the top-level ``packageName:`` line: the key (maybe quoted), the value, a comment
_LINE = re.compile(
    r"""^(?P<key>(?:packageName|"packageName"|'packageName')[ \t]*:[ \t]*)
        (?P<value>"(?:[^"\\\r\n]|\\.)*"|'(?:[^'\r\n]|'')*'|[^\r\n#]*?)
        (?P<rest>[ \t]*(?:[ \t]\#[^\r\n]*)?\r?)$""",
    re.MULTILINE | re.VERBOSE,
)
#: a name that can stay a plain YAML scalar
_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$")


@dataclasses.dataclass(frozen=True)
class PackageFile:
    """The package name, and the top-level file it was found in."""

    name: str
    filename: str


class _Loader(yaml.BaseLoader):
    """Every scalar as text; a mapping with a key twice is an error."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        mapping = super().construct_mapping(node, deep)
        if len(mapping) != len(node.value):
            raise yaml.constructor.ConstructorError(
                None, None, "found a duplicate key", node.start_mark
            )
        return mapping


def find_package(root: str) -> PackageFile:
    """The first top-level YAML file, by name, that has ``packageName`` (§5)."""
    for filename in sorted(os.listdir(root)):
        path = os.path.join(root, filename)
        if not filename.endswith((".yaml", ".yml")) or not os.path.isfile(path):
            continue
        try:
            name = _package_name(path)
        except (OSError, ValueError, TypeError, yaml.YAMLError):
            raise PackageValidationError(f"Failed to process yaml file /{filename}") from None
        if name is not None:
            return PackageFile(name, filename)
    raise PackageValidationError("Could not find packageName in manifests.")


def _package_name(path: str) -> str | None:
    with open(path, "rb") as handle:
        text = handle.read().decode("utf-8")
    contents = yaml.load(text, Loader=_Loader)  # noqa: S506 - BaseLoader builds no objects
    if isinstance(contents, dict):
        if KEY not in contents:
            return None
        name = contents[KEY]
        if not isinstance(name, str):
            raise TypeError(f"{KEY} is not a string")
        return name
    if isinstance(contents, (list, str)) and KEY not in contents:
        return None  # a list or a scalar without the key: read past, as upstream does
    raise TypeError("not a mapping")  # empty, or a list or scalar that names the key


def package_name(root: str, suffix: str) -> str:
    """The push's package name, with ``suffix`` (written into its package file) if the name
    does not already end with it."""
    found = find_package(root)
    if not suffix or found.name.endswith(suffix):
        return found.name
    suffixed = found.name + suffix
    try:
        rename(os.path.join(root, found.filename), suffixed)
    except (OSError, ValueError, yaml.YAMLError):
        raise PackageValidationError(f"Failed to process yaml file /{found.filename}") from None
    return suffixed


def rename(path: str, new_name: str) -> None:
    """Set the package file's ``packageName`` to ``new_name``, keeping its comments."""
    with open(path, "rb") as handle:
        text = handle.read().decode("utf-8")
    rewritten = rewrite_text(text, new_name)
    with open(path, "wb") as handle:
        handle.write(rewritten.encode("utf-8"))


def rewrite_text(text: str, new_name: str) -> str:
    """``text`` with its top-level ``packageName`` value replaced by ``new_name``: the one
    line edited when that gives the right document, else the whole document dumped again."""
    matches = list(_LINE.finditer(text))
    if len(matches) == 1:
        match = matches[0]
        edited = text[: match.start("value")] + _scalar(new_name, match["value"])
        edited += text[match.end("value") :]
        if _loads_with(edited, new_name, yaml.load(text, Loader=_Loader)):  # noqa: S506
            return edited
    contents = yaml.safe_load(text)
    contents[KEY] = new_name
    dumped: str = yaml.safe_dump(
        contents, default_flow_style=False, sort_keys=False, width=200, allow_unicode=True
    )
    return dumped


def _scalar(name: str, old_value: str) -> str:
    """``name`` as a YAML scalar, in the old value's quoting style where it can be."""
    if old_value.startswith("'") and "\n" not in name:
        return "'" + name.replace("'", "''") + "'"
    if old_value.startswith('"') or not _PLAIN.match(name):
        return json.dumps(name)
    return name


def _loads_with(edited: str, new_name: str, before: Any) -> bool:
    """Whether ``edited`` is ``before`` with only ``packageName`` changed."""
    try:
        after = yaml.load(edited, Loader=_Loader)  # noqa: S506
    except yaml.YAMLError:
        return False
    if not isinstance(after, dict) or not isinstance(before, dict):
        return False
    return after.get(KEY) == new_name and {**before, KEY: new_name} == after
