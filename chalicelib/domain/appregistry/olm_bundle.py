"""A release of an operator as an OLM bundle (registry+v1): a tar.gz holding ``manifests/``
(one ClusterServiceVersion, the CRDs it owns and the other manifests of its version) and
``metadata/annotations.yaml`` (package, channels, default channel).

The release's blob is what operator-courier pushes (omps-behaviour.md §7): one top directory
holding either a flat ``bundle.yaml`` (``data.customResourceDefinitions``,
``clusterServiceVersions`` and ``packages``, each a YAML string holding a list) or a nested
tree (the package file at the root, one directory per version with its CSV and CRDs). With
several CSVs, the default is the one the default channel (else the first channel) names as its
``currentCSV``; ``csv`` picks another. The output is the same for the same input: members in
name order, fixed times and owners, no gzip time or file name."""

from __future__ import annotations

import dataclasses
import gzip
import io
import posixpath
import re
import tarfile
from typing import Any

import yaml

from chalicelib.domain.appregistry import blobs
from chalicelib.domain.appregistry.blobs import BadBlob, BlobLimits
from chalicelib.domain.appregistry.errors import CsvNotFound, InvalidBundle

CSV_KIND = "ClusterServiceVersion"
CRD_KIND = "CustomResourceDefinition"
ANNOTATION = "operators.operatorframework.io.bundle.{}.v1"
#: every member's time (1980-01-01T00:00:00Z, as reproducible archives use)
FIXED_MTIME = 315532800
YAML_SUFFIXES = (".yaml", ".yml")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclasses.dataclass(frozen=True)
class OlmBundle:
    package: str  # the packageName
    csv: str  # the ClusterServiceVersion's metadata.name
    data: bytes  # the tar.gz

    @property
    def filename(self) -> str:
        return f"{safe_name(self.csv)}.bundle.tar.gz"


@dataclasses.dataclass(frozen=True)
class _Csv:
    name: str
    document: dict[str, Any]
    file: str | None  # nested: its file's base name; flat: None
    directory: str | None  # nested: its version directory; flat: None


@dataclasses.dataclass
class _Operator:
    """What a release holds: its package, its CSVs, its CRDs by name, and (nested) the YAML
    manifests of each version directory by base name."""

    package: dict[str, Any]
    csvs: list[_Csv]
    crds: dict[str, dict[str, Any]]
    directories: dict[str, dict[str, bytes]] = dataclasses.field(default_factory=dict)


def export(blob: bytes, limits: BlobLimits, csv: str | None = None) -> OlmBundle:
    """The release ``blob`` as the OLM bundle of ``csv`` (None: the default channel's)."""
    tree = _tree(blob, limits)
    operator = _flat(tree["bundle.yaml"]) if _is_flat(tree) else _nested(tree)
    chosen = _choose(operator, csv)
    package_name = str(operator.package.get("packageName") or "")
    members = {f"manifests/{name}": data for name, data in _manifests(operator, chosen).items()}
    members["metadata/annotations.yaml"] = _dump(
        {"annotations": bundle_annotations(operator, chosen)}
    )
    return OlmBundle(package_name, chosen.name, targz(members))


def bundle_annotations(operator: _Operator, csv: _Csv) -> dict[str, str]:
    channels = _channels(operator.package)
    heading = [name for name, current in channels if current == csv.name]
    found = {
        ANNOTATION.format("mediatype"): "registry+v1",
        ANNOTATION.format("manifests"): "manifests/",
        ANNOTATION.format("metadata"): "metadata/",
        ANNOTATION.format("package"): str(operator.package.get("packageName") or ""),
        ANNOTATION.format("channels"): ",".join(heading or [name for name, _ in channels]),
    }
    default = operator.package.get("defaultChannel")
    if default:
        found[ANNOTATION.format("channel.default")] = str(default)
    return found


def targz(members: dict[str, bytes]) -> bytes:
    """A deterministic tar.gz of ``members`` (path -> bytes) and their parent directories."""
    directories = {
        posixpath.dirname(path) for path in members if posixpath.dirname(path) not in ("", ".")
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(set(members) | directories):
            info = tarfile.TarInfo(path)
            info.mtime, info.uid, info.gid, info.uname, info.gname = FIXED_MTIME, 0, 0, "", ""
            if path in directories:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.mode, info.size = 0o644, len(members[path])
                tar.addfile(info, io.BytesIO(members[path]))
    return gzip.compress(raw.getvalue(), mtime=0)


def safe_name(name: str) -> str:
    """``name`` as a file name (anything but letters, digits, ``._-`` becomes ``_``)."""
    return _UNSAFE.sub("_", name).lstrip(".") or "unnamed"


# -- reading the release ------------------------------------------------------------------------
def _tree(blob: bytes, limits: BlobLimits) -> dict[str, bytes]:
    """The blob's files by path, its one top directory (operator-courier's) taken off."""
    try:
        tree = dict(blobs.files(blob, limits))
    except BadBlob as exc:
        raise InvalidBundle(f"The release is not a gzip tar Kiln can read: {exc}") from None
    tops = {path.split("/", 1)[0] for path in tree}
    if len(tops) == 1 and all("/" in path for path in tree):
        top = tops.pop() + "/"
        tree = {path[len(top) :]: data for path, data in tree.items()}
    return tree


def _is_flat(tree: dict[str, bytes]) -> bool:
    """operator-courier's flat bundle: a root ``bundle.yaml`` with a ``data`` mapping."""
    if "bundle.yaml" not in tree:
        return False
    document = _load(tree["bundle.yaml"], "bundle.yaml")
    return isinstance(document, dict) and isinstance(document.get("data"), dict)


def _flat(text: bytes) -> _Operator:
    data = _load(text, "bundle.yaml")["data"]
    packages = _documents(data.get("packages"), "packages")
    if not packages:
        raise InvalidBundle("bundle.yaml holds no package")
    csvs = [
        _Csv(_name(document, CSV_KIND), document, None, None)
        for document in _documents(data.get("clusterServiceVersions"), "clusterServiceVersions")
    ]
    crds = {
        _name(document, CRD_KIND): document
        for document in _documents(
            data.get("customResourceDefinitions"), "customResourceDefinitions"
        )
    }
    return _Operator(packages[0], csvs, crds)


def _nested(tree: dict[str, bytes]) -> _Operator:
    package: dict[str, Any] | None = None
    for path in sorted(path for path in tree if "/" not in path and _is_yaml(path)):
        document = _load(tree[path], path)
        if isinstance(document, dict) and "packageName" in document:
            package = document
            break
    directories: dict[str, dict[str, bytes]] = {}
    for path, data in tree.items():
        directory, _, rest = path.partition("/")
        if rest and "/" not in rest and _is_yaml(rest):
            directories.setdefault(directory, {})[rest] = data
    csvs: list[_Csv] = []
    crds: dict[str, dict[str, Any]] = {}
    for directory in sorted(directories):
        for file in sorted(directories[directory]):
            document = _load(directories[directory][file], f"{directory}/{file}")
            kind = document.get("kind") if isinstance(document, dict) else None
            if kind == CSV_KIND and isinstance(document, dict):
                csvs.append(_Csv(_name(document, CSV_KIND), document, file, directory))
            elif kind == CRD_KIND and isinstance(document, dict):
                crds[_name(document, CRD_KIND)] = document  # a later version's wins
    if package is None:
        raise InvalidBundle("The release holds no bundle.yaml and no package file at its root")
    if not csvs:
        raise InvalidBundle("The release holds no ClusterServiceVersion")
    return _Operator(package, csvs, crds, directories)


def _choose(operator: _Operator, wanted: str | None) -> _Csv:
    names = [csv.name for csv in operator.csvs]
    if wanted is not None:
        for csv in operator.csvs:
            if csv.name == wanted:
                return csv
        raise CsvNotFound(
            f"CSV {wanted} is not in the release; it holds: {', '.join(names) or 'none'}",
            {"csv": wanted, "csvs": names},
        )
    if not operator.csvs:
        raise InvalidBundle("The release holds no ClusterServiceVersion")
    current = _default_csv(operator.package)
    for csv in operator.csvs:
        if csv.name == current:
            return csv
    if len(operator.csvs) == 1:
        return operator.csvs[0]
    raise CsvNotFound(
        f"The default channel's currentCSV {current} is not in the release; "
        f"?csv= picks one of: {', '.join(names)}",
        {"csv": current, "csvs": names},
    )


def _manifests(operator: _Operator, csv: _Csv) -> dict[str, bytes]:
    """The files of ``manifests/``: the CSV, the CRDs it owns, its version's other manifests."""
    found: dict[str, bytes] = {}
    present: set[str] = set()
    if csv.directory is None or csv.file is None:
        found[f"{safe_name(csv.name)}.clusterserviceversion.yaml"] = _dump(csv.document)
    else:
        for file, data in sorted(operator.directories[csv.directory].items()):
            document = _load(data, f"{csv.directory}/{file}")
            if not isinstance(document, dict) or not document.get("kind"):
                continue
            if document.get("kind") == CSV_KIND and file != csv.file:
                continue  # another CSV of the same directory has its own bundle
            if document.get("kind") == CRD_KIND:
                present.add(_name(document, CRD_KIND))
            found[safe_name(file)] = data
    for name in _owned(csv.document):
        if name in present or name not in operator.crds:
            continue
        file = f"{safe_name(name)}.crd.yaml"
        if file not in found:
            found[file] = _dump(operator.crds[name])
    return found


def _owned(csv: dict[str, Any]) -> list[str]:
    spec = csv.get("spec")
    definitions = spec.get("customresourcedefinitions") if isinstance(spec, dict) else None
    owned = definitions.get("owned") if isinstance(definitions, dict) else None
    if not isinstance(owned, list):
        return []
    return [str(item["name"]) for item in owned if isinstance(item, dict) and item.get("name")]


def _channels(package: dict[str, Any]) -> list[tuple[str, str]]:
    found = package.get("channels")
    if not isinstance(found, list):
        return []
    return [
        (str(item["name"]), str(item.get("currentCSV") or ""))
        for item in found
        if isinstance(item, dict) and item.get("name")
    ]


def _default_csv(package: dict[str, Any]) -> str:
    channels = _channels(package)
    default = package.get("defaultChannel")
    for name, current in channels:
        if name == default:
            return current
    return channels[0][1] if channels else ""


# -- YAML ---------------------------------------------------------------------------------------
def _load(text: bytes | str, where: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # CSafeLoader or SafeLoader
    except yaml.YAMLError as exc:
        raise InvalidBundle(f"{where} is not valid YAML: {exc}") from None


def _documents(value: Any, where: str) -> list[dict[str, Any]]:
    """A bundle.yaml list: a YAML string holding a list of mappings (or the list itself)."""
    if value is None or value == "":
        return []
    found = _load(value, f"bundle.yaml {where}") if isinstance(value, str) else value
    if found is None:
        return []
    if not isinstance(found, list) or not all(isinstance(item, dict) for item in found):
        raise InvalidBundle(f"bundle.yaml {where} is not a list of mappings")
    return found


def _name(document: dict[str, Any], kind: str) -> str:
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not name:
        raise InvalidBundle(f"a {kind} has no metadata.name")
    return name


def _dump(document: Any) -> bytes:
    return yaml.safe_dump(
        document, default_flow_style=False, sort_keys=False, allow_unicode=True, width=200
    ).encode()


def _is_yaml(path: str) -> bool:
    return path.lower().endswith(YAML_SUFFIXES)
