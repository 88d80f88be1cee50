"""SBOMs of a kiln-debian image: ``sbom.cdx.json`` (CycloneDX 1.6, cyclonedx-python-lib) and
``sbom.spdx.json`` (SPDX 2.3, spdx-tools), written beside the image's artifacts.

Both are made from what the build already wrote: the build plan (every installed package with
its full version, architecture and the .deb's sha256), packages.json (the .deb's MD5) and the
image's files in ``out_dir`` (squashfs, kernel, initrd, disks), each hashed here. They are
reproducible: the time is SOURCE_DATE_EPOCH and the serial number a UUIDv5 of the plan's digest
and the files' digests, so equal builds give equal bytes. What they contain: docs/sbom.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cyclonedx.contrib.this.builders import this_component
from cyclonedx.model import (
    ExternalReference,
    ExternalReferenceType,
    HashAlgorithm,
    HashType,
    Property,
    XsUri,
)
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.dependency import Dependency
from cyclonedx.model.lifecycle import LifecyclePhase, PredefinedLifecycle
from cyclonedx.model.tool import ToolRepository
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL
from spdx_tools.spdx import model as spdx
from spdx_tools.spdx.jsonschema.document_converter import DocumentConverter
from spdx_tools.spdx.spdx_element_utils import calculate_package_verification_code
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from builders.backends.base import (
    DISK_TYPES,
    INITRD,
    KERNEL,
    ROOTFS_SQUASHFS,
    SBOM_CYCLONEDX,
    SBOM_SPDX,
    Artifact,
    BuildContext,
)

CYCLONEDX_FILE = "sbom.cdx.json"
SPDX_FILE = "sbom.spdx.json"
SPDX_NAMESPACE = "https://kiln.invalid/spdx/"  # + the serial number: unique, never fetched
#: Debian's release numbers by codename, for the purl's ``distro`` qualifier when the suite's
#: Release file has no ``Version`` (testing) or was not read
_CODENAMES = ["jessie", "stretch", "buster", "bullseye", "bookworm", "trixie", "forky", "duke"]
DEBIAN_RELEASES = {codename: str(number) for number, codename in enumerate(_CODENAMES, 8)}
_SERIAL_NAMESPACE = uuid.UUID("af72cf00-602e-4a64-bb4a-3b0fee8e16fc")
_SPDX_ID = re.compile(r"[^A-Za-z0-9.-]+")
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class ImageFile:
    """One of the image's artifacts, hashed."""

    name: str
    media_type: str
    size: int
    sha256: str
    sha1: str  # SPDX requires it of every file


@dataclasses.dataclass(frozen=True)
class DebPackage:
    name: str
    version: str  # the full Debian version, [epoch:]upstream[-revision]
    arch: str
    sha256: str  # the .deb's, from the package index ("" when no index had it)
    md5: str
    url: str  # where apt fetched the .deb from ("" when unknown)


@dataclasses.dataclass(frozen=True)
class ImageSbom:
    """What both documents say about one image."""

    name: str  # the image root archive's name
    version: str  # the Debian codename (else the suite)
    arch: str  # Debian's architecture name
    namespace: str  # the purls' namespace (the distribution's vendor)
    distro: str  # the purls' distro qualifier, e.g. debian-12 ("": unknown)
    created: datetime  # SOURCE_DATE_EPOCH
    serial: uuid.UUID
    plan_sha256: str
    packages: tuple[DebPackage, ...]
    files: tuple[ImageFile, ...]

    def purl(self, package: DebPackage) -> PackageURL:
        """``pkg:deb/debian/<name>@<version>?arch=<arch>&distro=debian-<major>``"""
        qualifiers = {"arch": package.arch, **({"distro": self.distro} if self.distro else {})}
        return PackageURL("deb", self.namespace, package.name, package.version, qualifiers)


# --- the facts ------------------------------------------------------------------------------


def image_files(ctx: BuildContext, skip: Collection[str] = ()) -> list[ImageFile]:
    """Every regular file in ``ctx.out_dir`` (but ``skip`` and the SBOMs), sorted by name, with
    its digests and its artifact type (by the names the Debian backend gives its files)."""
    named = {
        f"{ctx.image_root_archive_name}.squashfs": ROOTFS_SQUASHFS,
        ctx.kernel_file_name: KERNEL,
        ctx.initrd_file_name: INITRD,
    }
    found = []
    for path in sorted(ctx.out_dir.iterdir()):
        if path.name in {*skip, CYCLONEDX_FILE, SPDX_FILE} or path.is_symlink():
            continue
        if not path.is_file():
            continue
        sha256, sha1, size = hashlib.sha256(), hashlib.sha1(), 0
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                sha256.update(chunk)
                sha1.update(chunk)
                size += len(chunk)
        kind = named.get(path.name) or DISK_TYPES.get(path.suffix[1:], "application/octet-stream")
        found.append(ImageFile(path.name, kind, size, sha256.hexdigest(), sha1.hexdigest()))
    return found


def distro_of(codename: str, release_version: str = "", namespace: str = "debian") -> str:
    """``debian-12``: the major number of the Release file's ``Version``, else the codename's
    (DEBIAN_RELEASES); "" when neither says (sid)."""
    major = release_version.split(".", 1)[0]
    if not major.isdigit():
        major = DEBIAN_RELEASES.get(codename, "") if namespace == "debian" else ""
    return f"{namespace}-{major}" if major else ""


def describe(
    plan: Mapping[str, Any],
    listed: Sequence[Mapping[str, Any]],
    files: Sequence[ImageFile],
    image_name: str,
    *,
    release_version: str = "",
    namespace: str = "debian",
) -> ImageSbom:
    """The image as the build plan (build-plan.json), packages.json (``listed``, for the MD5s)
    and its hashed files describe it. ``release_version``: the suite's Release ``Version``."""
    md5s = {(item["name"], item["arch"]): item.get("sigmd5", "") for item in listed}
    packages = tuple(
        DebPackage(
            name=item["name"],
            version=item["version"],
            arch=item["arch"],
            sha256=item.get("sha256") or "",
            md5=md5s.get((item["name"], item["arch"])) or "",
            url=_download_url(item.get("repository") or "", item.get("filename") or ""),
        )
        for item in plan["packages"]
    )
    plan_sha256 = hashlib.sha256(
        json.dumps(plan, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()
    seed = ":".join([plan_sha256, *(f"{f.name}={f.sha256}" for f in files)])
    codename = str(plan.get("codename") or plan.get("suite") or "")
    return ImageSbom(
        name=image_name,
        version=codename,
        arch=str(plan.get("architecture") or ""),
        namespace=namespace,
        distro=distro_of(codename, release_version, namespace),
        created=datetime.fromtimestamp(int(plan.get("source_date_epoch") or 0), UTC),
        serial=uuid.uuid5(_SERIAL_NAMESPACE, seed),
        plan_sha256=plan_sha256,
        packages=packages,
        files=tuple(files),
    )


def _download_url(repository: str, filename: str) -> str:
    if not (repository and filename) or "://" not in repository:
        return ""
    return f"{repository.rstrip('/')}/{filename.lstrip('/')}"


# --- CycloneDX 1.6 --------------------------------------------------------------------------


def cyclonedx(sbom: ImageSbom) -> dict[str, Any]:
    """The CycloneDX 1.6 document: a library component per package, a file component per image
    file, the image (an operating-system component) as its subject, depending on every package."""
    packages = [_package_component(sbom, package) for package in sbom.packages]
    files = [_file_component(item) for item in sbom.files]
    image = _image_component(sbom)
    bom = Bom(
        serial_number=sbom.serial,
        metadata=BomMetaData(
            timestamp=sbom.created,
            lifecycles=[PredefinedLifecycle(LifecyclePhase.BUILD)],
            tools=ToolRepository(components=_tools()),
            component=image,
            properties=[
                Property(name="kiln:build_plan:sha256", value=sbom.plan_sha256),
                Property(name="kiln:architecture", value=sbom.arch),
            ],
        ),
        components=[*packages, *files],
        dependencies=[
            Dependency(
                ref=image.bom_ref, dependencies=[Dependency(ref=c.bom_ref) for c in packages]
            )
        ],
    )
    document: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    return document


def _tools() -> list[Component]:
    """Kiln and the library that wrote the document (bom-refs set: never random ones)."""
    library = this_component()
    return [
        Component(type=ComponentType.APPLICATION, name="kiln", bom_ref="tool:kiln"),
        Component(
            type=library.type,
            name=library.name,
            version=library.version,
            bom_ref=f"tool:{library.name}",
        ),
    ]


def _image_component(sbom: ImageSbom) -> Component:
    rootfs = next((f for f in sbom.files if f.media_type == ROOTFS_SQUASHFS), None)
    return Component(
        type=ComponentType.OPERATING_SYSTEM,
        name=sbom.name,
        version=sbom.version or None,
        bom_ref=f"image:{sbom.name}",
        description=f"{sbom.namespace.capitalize()} {sbom.version} image ({sbom.arch})",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=rootfs.sha256)] if rootfs else [],
        properties=[Property(name="kiln:distro", value=sbom.distro)] if sbom.distro else [],
    )


def _package_component(sbom: ImageSbom, package: DebPackage) -> Component:
    purl = sbom.purl(package)
    hashes = []
    if package.sha256:
        hashes.append(HashType(alg=HashAlgorithm.SHA_256, content=package.sha256))
    if package.md5:
        hashes.append(HashType(alg=HashAlgorithm.MD5, content=package.md5))
    references = []
    if package.url:
        references.append(
            ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(package.url))
        )
    return Component(
        type=ComponentType.LIBRARY,
        name=package.name,
        version=package.version,
        bom_ref=purl.to_string(),
        purl=purl,
        hashes=hashes,
        external_references=references,
    )


def _file_component(item: ImageFile) -> Component:
    return Component(
        type=ComponentType.FILE,
        name=item.name,
        bom_ref=f"file:{item.name}",
        hashes=[
            HashType(alg=HashAlgorithm.SHA_256, content=item.sha256),
            HashType(alg=HashAlgorithm.SHA_1, content=item.sha1),
        ],
        # the library writes mime_type as "mimeType", which 1.6's JSON schema refuses
        properties=[
            Property(name="kiln:artifact_type", value=item.media_type),
            Property(name="kiln:size", value=str(item.size)),
        ],
    )


# --- SPDX 2.3 -------------------------------------------------------------------------------


def spdx_document(sbom: ImageSbom) -> spdx.Document:
    """The SPDX 2.3 document: the image as a package the document DESCRIBES, which CONTAINS a
    package per installed .deb and a file per image file."""
    image_id, ids = "SPDXRef-Image", {"SPDXRef-Image"}
    packages = [
        _spdx_package(sbom, package, _spdx_id(f"Package-deb-{package.name}-{package.arch}", ids))
        for package in sbom.packages
    ]
    files = [
        spdx.File(
            name=f"./{item.name}",
            spdx_id=_spdx_id(f"File-{item.name}", ids),
            checksums=[
                spdx.Checksum(spdx.ChecksumAlgorithm.SHA1, item.sha1),
                spdx.Checksum(spdx.ChecksumAlgorithm.SHA256, item.sha256),
            ],
        )
        for item in sbom.files
    ]
    image = spdx.Package(
        spdx_id=image_id,
        name=sbom.name,
        version=sbom.version or None,
        download_location=spdx.SpdxNoAssertion(),
        files_analyzed=bool(files),
        verification_code=calculate_package_verification_code(files) if files else None,
        primary_package_purpose=spdx.PackagePurpose.OPERATING_SYSTEM,
        comment=f"{sbom.namespace.capitalize()} {sbom.version} image ({sbom.arch}) built by Kiln",
    )
    contained = [item.spdx_id for item in packages] + [item.spdx_id for item in files]
    relationships = [
        spdx.Relationship("SPDXRef-DOCUMENT", spdx.RelationshipType.DESCRIBES, image_id),
        *(spdx.Relationship(image_id, spdx.RelationshipType.CONTAINS, i) for i in contained),
    ]
    creation = spdx.CreationInfo(
        spdx_version="SPDX-2.3",
        spdx_id="SPDXRef-DOCUMENT",
        name=f"{sbom.name}-{sbom.version}" if sbom.version else sbom.name,
        document_namespace=f"{SPDX_NAMESPACE}{sbom.serial}",
        creators=[spdx.Actor(spdx.ActorType.TOOL, "kiln")],
        created=sbom.created,
        data_license="CC0-1.0",
    )
    return spdx.Document(
        creation, packages=[image, *packages], files=files, relationships=relationships
    )


def _spdx_package(sbom: ImageSbom, package: DebPackage, spdx_id: str) -> spdx.Package:
    checksums = []
    if package.sha256:
        checksums.append(spdx.Checksum(spdx.ChecksumAlgorithm.SHA256, package.sha256))
    if package.md5:
        checksums.append(spdx.Checksum(spdx.ChecksumAlgorithm.MD5, package.md5))
    purl = spdx.ExternalPackageRef(
        spdx.ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", sbom.purl(package).to_string()
    )
    return spdx.Package(
        spdx_id=spdx_id,
        name=package.name,
        version=package.version,
        download_location=spdx.SpdxNoAssertion(),
        files_analyzed=False,
        checksums=checksums,
        external_references=[purl],
    )


def _spdx_id(label: str, taken: set[str]) -> str:
    """``SPDXRef-<label>`` in SPDX's letters (letters, digits, ``.``, ``-``), made unique."""
    base = f"SPDXRef-{_SPDX_ID.sub('-', label)}"
    found, number = base, 1
    while found in taken:
        number += 1
        found = f"{base}-{number}"
    taken.add(found)
    return found


def spdx_problems(document: spdx.Document) -> list[str]:
    """What spdx-tools' validator finds wrong with the document (nothing, for a good one)."""
    return [message.validation_message for message in validate_full_spdx_document(document)]


# --- the files ------------------------------------------------------------------------------


def write(out_dir: Path, sbom: ImageSbom, log: Callable[[str], None] = print) -> list[Artifact]:
    """sbom.cdx.json and sbom.spdx.json in ``out_dir``."""
    document = spdx_document(sbom)
    for problem in spdx_problems(document):
        log(f"W: kiln: {SPDX_FILE}: {problem}")
    artifacts = []
    body: dict[str, Any]
    for name, body, kind in (
        (CYCLONEDX_FILE, cyclonedx(sbom), SBOM_CYCLONEDX),
        (SPDX_FILE, DocumentConverter().convert(document), SBOM_SPDX),
    ):
        target = out_dir / name
        target.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        target.chmod(0o644)
        artifacts.append(Artifact(path=target, type=kind))
    log(f"I: kiln: SBOMs: {len(sbom.packages)} packages, {len(sbom.files)} image files")
    return artifacts
