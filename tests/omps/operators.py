"""Operator-manifest zips for the OMPS tests: a small flat operator (package file, CSV, CRD)
and a nested one (package file and one directory per version), as operator-courier 2.1.11
accepts them with the package name as repository, and ``zip_of`` for anything hand-made."""

from __future__ import annotations

import io
import stat
import struct
import tarfile
import zipfile
from typing import Any

#: the package name (and so the v2 repo) of the operators below, unless told otherwise
PACKAGE = "kiln-demo"
#: an image reference the registry-replacement tests rewrite
IMAGE = "quay.io/kiln/demo-operator:v0.1.0"


def zip_of(files: dict[str, bytes | str]) -> bytes:
    """A deflated zip of ``files`` (relative path → content), in the order given."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content.encode() if isinstance(content, str) else content)
    return buffer.getvalue()


def package_yaml(package: str = PACKAGE, csvs: tuple[str, ...] = ("0.1.0",)) -> str:
    """The package file; its default channel's current CSV is the last of ``csvs``."""
    return (
        "# the operator's package: channels and their current CSV\n"
        f"packageName: {package}\n"
        "channels:\n"
        "- name: alpha\n"
        f"  currentCSV: {csv_name(package, csvs[-1])}\n"
    )


def csv_name(package: str, version: str) -> str:
    return f"{package}.v{version}"


def crd_yaml(group: str = "demo.kiln.example.com", kind: str = "Demo") -> str:
    plural = kind.lower() + "s"
    return f"""apiVersion: apiextensions.k8s.io/v1beta1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{group}
spec:
  group: {group}
  names:
    kind: {kind}
    listKind: {kind}List
    plural: {plural}
    singular: {kind.lower()}
  scope: Namespaced
  version: v1alpha1
"""


def csv_yaml(
    package: str = PACKAGE,
    version: str = "0.1.0",
    image: str = IMAGE,
    crds: tuple[tuple[str, str], ...] = (("demo.kiln.example.com", "Demo"),),
    replaces: str | None = None,
) -> str:
    """A ClusterServiceVersion owning ``crds`` ((group, kind) pairs), running ``image``."""
    owned = "".join(
        f"""    - name: {kind.lower()}s.{group}
      version: v1alpha1
      kind: {kind}
      displayName: {kind}
      description: A {kind} resource
"""
        for group, kind in crds
    )
    replacing = f"  replaces: {csv_name(package, replaces)}\n" if replaces else ""
    return f"""# the operator at version {version}; image {image}
apiVersion: operators.coreos.com/v1alpha1
kind: ClusterServiceVersion
metadata:
  name: {csv_name(package, version)}
  namespace: placeholder
  annotations:
    containerImage: {image}
    alm-examples: '[]'
spec:
  displayName: Kiln demo operator
  description: Runs {image} for the demo.
  version: {version}
{replacing}  maturity: alpha
  provider:
    name: Kiln
  installModes:
  - supported: true
    type: OwnNamespace
  - supported: true
    type: SingleNamespace
  - supported: false
    type: MultiNamespace
  - supported: true
    type: AllNamespaces
  install:
    strategy: deployment
    spec:
      deployments:
      - name: {package}
        spec:
          replicas: 1
          selector:
            matchLabels:
              name: {package}
          template:
            metadata:
              labels:
                name: {package}
            spec:
              containers:
              - name: operator
                image: {image}
  customresourcedefinitions:
    owned:
{owned}"""


def flat_files(package: str = PACKAGE, image: str = IMAGE) -> dict[str, bytes | str]:
    """A flat operator: package file, CSV and CRD at the top level."""
    return {
        "packages.yaml": package_yaml(package),
        "csv.yaml": csv_yaml(package, image=image),
        "crd.yml": crd_yaml(),
    }


def flat_operator(package: str = PACKAGE, image: str = IMAGE) -> bytes:
    return zip_of(flat_files(package, image))


def nested_files(package: str = PACKAGE, image: str = IMAGE) -> dict[str, bytes | str]:
    """A nested operator: the package file at the top, one directory per version (0.1.0 with
    one CRD, 0.2.0 with two) holding its CSV and CRDs."""
    second = (("demo.kiln.example.com", "Demo"), ("demo.kiln.example.com", "Backup"))
    return {
        f"{package}.package.yaml": package_yaml(package, ("0.1.0", "0.2.0")),
        "0.1.0/demo.crd.yaml": crd_yaml(),
        f"0.1.0/{package}.v0.1.0.clusterserviceversion.yaml": csv_yaml(package, "0.1.0", image),
        "0.2.0/demo.crd.yaml": crd_yaml(),
        "0.2.0/backup.crd.yaml": crd_yaml(kind="Backup"),
        f"0.2.0/{package}.v0.2.0.clusterserviceversion.yaml": csv_yaml(
            package, "0.2.0", image, crds=second, replaces="0.1.0"
        ),
    }


def nested_operator(package: str = PACKAGE, image: str = IMAGE) -> bytes:
    return zip_of(nested_files(package, image))


# -- sending them ---------------------------------------------------------------------------------
def multipart(
    content: bytes, filename: str = "operator_manifests.zip", field: str = "file"
) -> tuple[bytes, str]:
    """A multipart/form-data body with ``content`` as the file of ``field``, and its
    Content-Type (what ``curl -F file=@<filename>`` sends)."""
    from urllib3.filepost import encode_multipart_formdata

    return encode_multipart_formdata({field: (filename, content, "application/zip")})


def upload_headers(authorization: str | None, content_type: str) -> dict[str, str]:
    """An OMPS client's headers: its Authorization verbatim (None: none at all)."""
    headers = {"Content-Type": content_type}
    if authorization is not None:
        headers["Authorization"] = authorization
    return headers


def post_zip(
    kiln: Any,
    path: str,
    archive: bytes,
    *,
    authorization: str | None = "",
    filename: str = "operator_manifests.zip",
    field: str = "file",
) -> Any:
    """POST ``archive`` as OMPS's client does to ``path`` (under /omps), through the chalice
    test client. ``authorization`` "" (the default): a bare Kiln token of tenant demo, as
    read from a secret file; None: no header."""
    body, content_type = multipart(archive, filename, field)
    token = kiln.token() if authorization == "" else authorization
    headers = upload_headers(token, content_type)
    return kiln.client.http.post(f"/omps{path}", headers=headers, body=body)


def assert_error(
    response: Any, status: int, error: str, message: str, **extra: Any
) -> dict[str, Any]:
    """The response is OMPS's error body, exactly (plus ``extra`` fields, when given)."""
    assert response.status_code == status, response.body
    body: dict[str, Any] = response.json_body
    assert body == {"status": status, "error": error, "message": message, **extra}, body
    return body


# -- reading what was stored ----------------------------------------------------------------------
def stored_bundle(org: str, repo: str, version: str) -> dict[str, bytes]:
    """The files of a published release's tar.gz, by their path in it (directories as b"")."""
    from chalicelib.adapters.appregistry_models import AppReleaseModel
    from chalicelib.container import container
    from chalicelib.domain.appregistry.releases import blob_key

    record = AppReleaseModel.get(f"{org}/{repo}", f"{version}/helm")
    blob = container().artifacts.read(blob_key(record.digest))
    found: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member) if member.isfile() else None
            found[member.name] = handle.read() if handle else b""
    return found


def release_names(org: str, repo: str) -> list[str]:
    """The package's releases as stored (any order), straight from the table."""
    from chalicelib.adapters.appregistry_models import AppReleaseModel

    return sorted(record.release for record in AppReleaseModel.query(f"{org}/{repo}"))


# -- hand-made zips -------------------------------------------------------------------------------
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")


def patch_entry(
    archive: bytes,
    name: str,
    *,
    flag_bits: int | None = None,
    crc: int | None = None,
    file_size: int | None = None,
) -> bytes:
    """``archive`` with the entry ``name``'s headers (local and central) changed: what a
    hostile or broken zip says about an entry, whatever its data is."""
    data = bytearray(archive)
    with zipfile.ZipFile(io.BytesIO(archive)) as parsed:
        info = parsed.getinfo(name)
        position = parsed.start_dir
        central = None
        while position < len(data) and data[position : position + 4] == b"PK\x01\x02":
            fields = _CENTRAL.unpack_from(data, position)
            start = position + _CENTRAL.size
            if bytes(data[start : start + fields[12]]) == name.encode():
                central = position
            position += _CENTRAL.size + fields[12] + fields[13] + fields[14]
    assert central is not None, name
    local = info.header_offset
    # (offset in the local header, offset in the central entry, format) of each field
    changes = [
        (flag_bits, 6, 8, "<H"),
        (crc, 14, 16, "<L"),
        (file_size, 22, 24, "<L"),
    ]
    for value, local_at, central_at, fmt in changes:
        if value is not None:
            struct.pack_into(fmt, data, local + local_at, value)
            struct.pack_into(fmt, data, central + central_at, value)
    return bytes(data)


def zip_with_entries(entries: list[tuple[zipfile.ZipInfo, bytes | str]]) -> bytes:
    """A zip of hand-made entries (links, odd names), deflated."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, content in entries:
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content.encode() if isinstance(content, str) else content)
    return buffer.getvalue()


def symlink_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info
