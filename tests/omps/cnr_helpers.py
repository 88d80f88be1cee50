"""Helpers of the app registry (CNR) tests: release blobs as operator-courier pushes them (one
top directory holding a flat ``bundle.yaml``, or a nested tree), pushes as its ``PushCmd``
sends them, and reads as a marketplace-style reader makes them."""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
from typing import Any

import yaml

from tests.conftest import Kiln
from tests.omps import operators
from tests.omps.operators import PACKAGE, csv_name

CNR = "/cnr/api/v1/packages"
NAMESPACE = "kiln-ops"
TOP = f"{PACKAGE}-ab12cd34"  # courier's temporary directory name: <repo>-<8 random chars>
TARGZ = {"Accept": "application/x-gzip"}
ROBOTS = {
    "bot": {"password": "pw", "tenant": "demo"},
    "other-bot": {"password": "pw2", "tenant": "beta"},
    "admin-bot": {"password": "pw3", "tenant": "ops", "role": "admin"},
}


# -- blobs --------------------------------------------------------------------------------------
def targz(files: dict[str, bytes | str], top: str | None = TOP) -> bytes:
    """A tar.gz of ``files`` under the directory ``top`` (None: at the root), as tarfile's
    ``tar.add(dir)`` writes it: the directory first, then its files (the same bytes for the
    same files: no gzip time)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        if top:
            info = tarfile.TarInfo(top)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        made: set[str] = set()
        for name, content in files.items():
            path = f"{top}/{name}" if top else name
            parent = path.rsplit("/", 1)[0] if "/" in path else ""
            if parent and parent != top and parent not in made:
                made.add(parent)
                folder = tarfile.TarInfo(parent)
                folder.type, folder.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(folder)
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0)


def package_document(
    package: str = PACKAGE,
    channels: dict[str, str] | None = None,
    default: str | None = None,
) -> dict[str, Any]:
    """A package file: ``channels`` maps each channel to its currentCSV's version."""
    found = channels or {"alpha": "0.1.0"}
    document: dict[str, Any] = {
        "packageName": package,
        "channels": [
            {"name": name, "currentCSV": csv_name(package, version)}
            for name, version in found.items()
        ],
    }
    if default:
        document["defaultChannel"] = default
    return document


def bundle_yaml(
    package: str = PACKAGE,
    versions: tuple[str, ...] = ("0.1.0",),
    channels: dict[str, str] | None = None,
    default: str | None = None,
) -> str:
    """operator-courier's flat ``bundle.yaml``: three YAML strings, each a list. The CSV of
    the last version owns the Demo and Backup CRDs, the others Demo only."""
    csvs = []
    for index, version in enumerate(versions):
        crds = [("demo.kiln.example.com", "Demo")]
        if index == len(versions) - 1 and len(versions) > 1:
            crds.append(("demo.kiln.example.com", "Backup"))
        replaces = versions[index - 1] if index else None
        text = operators.csv_yaml(package, version, crds=tuple(crds), replaces=replaces)
        csvs.append(yaml.safe_load(text))
    crds = [yaml.safe_load(operators.crd_yaml()), yaml.safe_load(operators.crd_yaml(kind="Backup"))]
    packages = [package_document(package, channels or {"alpha": versions[-1]}, default)]
    data = {
        "customResourceDefinitions": yaml.dump(crds, default_flow_style=False),
        "clusterServiceVersions": yaml.dump(csvs, default_flow_style=False),
        "packages": yaml.dump(packages, default_flow_style=False),
    }
    return yaml.dump({"data": data}, default_flow_style=False)


def flat_blob(package: str = PACKAGE, versions: tuple[str, ...] = ("0.1.0",), **kw: Any) -> bytes:
    return targz({"bundle.yaml": bundle_yaml(package, versions, **kw)}, f"{package}-ab12cd34")


def nested_blob(package: str = PACKAGE, extra: dict[str, str] | None = None) -> bytes:
    """The nested tree of tests/omps/operators.py (0.1.0 and 0.2.0), as courier copies it."""
    files = {**operators.nested_files(package), **(extra or {})}
    return targz(files, f"{package}-ab12cd34")


def b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode()


# -- requests -----------------------------------------------------------------------------------
def bearer(kiln: Kiln, tenant: str = "demo", role: str = "user") -> dict[str, str]:
    return {"Authorization": f"Bearer {kiln.token(tenant, role)}"}


def robots(kiln: Kiln, organizations: dict[str, Any] | None = None) -> None:
    kiln.configure(
        omps_robots=json.dumps(ROBOTS), omps_organizations=json.dumps(organizations or {})
    )


def login(kiln: Kiln, username: str = "bot", password: str = "pw") -> Any:
    body = {"user": {"username": username, "password": password}}
    return kiln.client.http.post(
        "/cnr/api/v1/users/login",
        headers={"Content-Type": "application/json"},
        body=json.dumps(body),
    )


def push(
    kiln: Kiln,
    blob: bytes | None = None,
    release: str | None = "1.0.0",
    *,
    namespace: str = NAMESPACE,
    package: str = PACKAGE,
    headers: dict[str, str] | None = None,
    query: str = "",
    body: dict[str, Any] | None = None,
) -> Any:
    """What operator-courier's PushCmd sends (a Bearer token of tenant demo by default)."""
    payload = body
    if payload is None:
        payload = {"blob": b64(blob if blob is not None else flat_blob()), "media_type": "helm"}
        if release is not None:
            payload["release"] = release
    sent = {"Content-Type": "application/json", **(bearer(kiln) if headers is None else headers)}
    return kiln.client.http.post(
        f"{CNR}/{namespace}/{package}{query}", headers=sent, body=json.dumps(payload)
    )


def get(kiln: Kiln, path: str, headers: dict[str, str] | None = None, **extra: str) -> Any:
    """GET under /cnr/api/v1/packages (``path`` starts with / or ?)."""
    sent = {**(bearer(kiln) if headers is None else headers), **extra}
    return kiln.client.http.get(f"{CNR}{path}", headers=sent)


def delete(kiln: Kiln, path: str, headers: dict[str, str] | None = None) -> Any:
    return kiln.client.http.delete(
        f"{CNR}{path}", headers=bearer(kiln) if headers is None else headers
    )


def error(response: Any, status: int) -> dict[str, Any]:
    """The ``{"error": {"code", "message", "details"}}`` of a refusal with ``status``."""
    assert response.status_code == status, response.body
    body = response.json_body
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return dict(body["error"])


def members(blob: bytes) -> dict[str, bytes]:
    """A tar.gz's regular files by name."""
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
