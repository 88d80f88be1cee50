"""The organization's rewrites of a push's manifests (omps-behaviour.md §8), after the
version step and before validation: registry replacement, then CSV annotations.

- ``replace_registry``: on the raw text of every ``*.yml``/``*.yaml`` file (any depth, any
  case of the extension), the rules in order, each on the previous one's result: a plain rule
  replaces every occurrence literally, a ``regexp`` one is a multiline ``re.sub`` (``$`` ends
  a line; back-references allowed). Comments and descriptions are hit too. Files are read as
  upstream reads them (universal newlines), so ``$`` means the same; bytes that are not UTF-8
  are carried through unchanged.
- ``csv_annotations``: in every YAML file whose document is of kind ``ClusterServiceVersion``,
  ``metadata.annotations[name] = value`` with ``{package_name}`` expanded; the file is dumped
  again (line width 200, keys in their order). A file that does not load as one mapping is
  left as it is (operator-courier reports what matters of it), where upstream fails with a 500.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import yaml

from chalicelib.domain.omps.organizations import CsvAnnotation, RegistryReplacement

YAML_WIDTH = 200
CSV_KIND = "ClusterServiceVersion"


def yaml_files(root: str) -> Iterator[str]:
    """Every ``*.yml``/``*.yaml`` file under ``root``, any depth, any case."""
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith((".yml", ".yaml")):
                yield os.path.join(folder, name)


def replace_text(text: str, rules: tuple[RegistryReplacement, ...]) -> str:
    """``text`` with every rule applied, in order."""
    for rule in rules:
        if rule.regexp:
            text = re.sub(rule.old, rule.new, text, flags=re.MULTILINE)
        else:
            text = text.replace(rule.old, rule.new)
    return text


def replace_registry(root: str, rules: tuple[RegistryReplacement, ...]) -> None:
    """Apply the organization's ``replace_registry`` rules to every YAML file's text."""
    if not rules:
        return
    for path in yaml_files(root):
        text = _read_text(path)
        _write_text(path, replace_text(text, rules))


def csv_annotations(root: str, annotations: tuple[CsvAnnotation, ...], package_name: str) -> None:
    """Set the organization's annotations on every ClusterServiceVersion."""
    if not annotations:
        return
    values = {item.name: item.value.format(package_name=package_name) for item in annotations}
    for path in yaml_files(root):
        try:
            contents = yaml.safe_load(_read_text(path))
        except yaml.YAMLError:
            continue
        if not isinstance(contents, dict) or contents.get("kind") != CSV_KIND:
            continue
        metadata = contents.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            continue
        existing = metadata.get("annotations")
        if not isinstance(existing, dict):
            existing = metadata["annotations"] = {}
        existing.update(values)
        dumped = yaml.safe_dump(
            contents,
            default_flow_style=False,
            sort_keys=False,
            width=YAML_WIDTH,
            allow_unicode=True,
        )
        _write_text(path, dumped)


def _read_text(path: str) -> str:
    """The file's text with universal newlines (``\\r\\n`` and ``\\r`` read as ``\\n``)."""
    with open(path, "rb") as handle:
        raw = handle.read()
    text = raw.decode("utf-8", "surrogateescape")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _write_text(path: str, text: str) -> None:
    with open(path, "wb") as handle:
        handle.write(text.encode("utf-8", "surrogateescape"))
