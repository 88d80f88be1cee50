"""The SBOMs of a kiln-debian image (builders/sbom.py), written by the real metadata step
(debian_build_info.write_artifacts) from a realistic dpkg status, Packages indexes and image
files: CycloneDX 1.6 checked with cyclonedx-python-lib's strict JSON validator, SPDX 2.3 parsed
and checked with spdx-tools' validator; purls, hashes and reproducibility."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from builders import sbom
from builders.backends import debian_build_info as info
from builders.backends.base import (
    BUILD_PLAN_JSON,
    DISK_QCOW2,
    INITRD,
    KERNEL,
    PACKAGES_JSON,
    ROOTFS_SQUASHFS,
    SBOM_CYCLONEDX,
    SBOM_SPDX,
)
from tests.builders.helpers import context, load, write_recipe

SSH_SHA256 = "5a5c0e8f8d5f3b9c0e2f4d1a7b6c3e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9"
INDEX = f"""\
Package: openssh-server
Source: openssh
Version: 1:9.2p1-2+deb12u5
Architecture: amd64
Depends: libc6 (>= 2.36), openssh-client (= 1:9.2p1-2+deb12u5)
Description: secure shell (SSH) server, for secure access from remote machines
 This is the portable version of OpenSSH.
Filename: pool/main/o/openssh/openssh-server_9.2p1-2+deb12u5_amd64.deb
Size: 456548
MD5sum: 0b7e2b8c7e1f4b8f2f9e6ad0c1d2e3f4
SHA256: {SSH_SHA256}

Package: libc6
Source: glibc
Version: 2.36-9+deb12u10
Architecture: amd64
Filename: pool/main/g/glibc/libc6_2.36-9+deb12u10_amd64.deb
Size: 2757936
MD5sum: 11111111111111111111111111111111
SHA256: 2222222222222222222222222222222222222222222222222222222222222222

Package: libstdc++6
Source: gcc-12
Version: 12.2.0-14+deb12u1
Architecture: amd64
Filename: pool/main/g/gcc-12/libstdc++6_12.2.0-14+deb12u1_amd64.deb
Size: 613000
MD5sum: 33333333333333333333333333333333
SHA256: 4444444444444444444444444444444444444444444444444444444444444444

Package: libc6
Version: 2.36-9+deb12u10
Architecture: i386
Filename: pool/main/g/glibc/libc6_2.36-9+deb12u10_i386.deb
MD5sum: 55555555555555555555555555555555
SHA256: 6666666666666666666666666666666666666666666666666666666666666666
"""
INSTALLED = (
    "openssh-server\t1:9.2p1-2+deb12u5\tamd64\tinstall ok installed\n"
    "libc6\t2.36-9+deb12u10\tamd64\tinstall ok installed\n"
    "libc6\t2.36-9+deb12u10\ti386\tinstall ok installed\n"
    "libstdc++6\t12.2.0-14+deb12u1\tamd64\tinstall ok installed\n"
    "site-tool\t0.1\tall\tinstall ok installed\n"  # from a file: in no index
)
RELEASE = b"Origin: Debian\nLabel: Debian\nSuite: oldstable\nVersion: 12.11\nCodename: bookworm\n"
IMAGE_FILES = {
    "image.squashfs": b"hsqs" + b"\0" * 4000,
    "vmlinuz": b"MZ kernel",
    "initrd": b"\x1f\x8b initrd",
    "image.qcow2": b"QFI\xfb disk",
}
SSH_PURL = "pkg:deb/debian/openssh-server@1:9.2p1-2%2Bdeb12u5?arch=amd64&distro=debian-12"


def build(base: Path, files: dict[str, bytes] | None = None, release: bytes = RELEASE) -> Path:
    """The metadata step of a build whose image files are ``files``: its out_dir."""
    recipe_dir = write_recipe(base / "recipe", "suite: bookworm\npackages: [openssh-server]\n")
    ctx = context(base, recipe_dir, image_root_archive_name="image")
    ctx.out_dir.mkdir(parents=True)
    for name, data in (IMAGE_FILES if files is None else files).items():
        (ctx.out_dir / name).write_bytes(data)
    info_dir = base / "build-info"
    (info_dir / info.LISTS_DIR).mkdir(parents=True)
    (info_dir / info.INSTALLED_FILE).write_text(INSTALLED)
    (info_dir / info.LISTS_DIR / "1").write_text(INDEX)
    (info_dir / info.SOURCES_FILE).write_text("1\thttp://deb.debian.org/debian/\n")
    recipe = load(base, (recipe_dir / "recipe.yaml").read_text())
    sources = info.Sources("http://deb.debian.org/debian", release, ())
    artifacts = info.write_artifacts(ctx, recipe, sources, "amd64", info_dir, {"dpkg": "1.21"})
    assert [a.type for a in artifacts] == [
        PACKAGES_JSON,
        BUILD_PLAN_JSON,
        SBOM_CYCLONEDX,
        SBOM_SPDX,
    ]
    assert [a.path.name for a in artifacts[2:]] == ["sbom.cdx.json", "sbom.spdx.json"]
    assert all(oct(a.path.stat().st_mode)[-3:] == "644" for a in artifacts)
    return ctx.out_dir


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("build"))


def by_name(components: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{c['name']}:{c.get('purl', '')}": c for c in components}


# --- CycloneDX 1.6 --------------------------------------------------------------------------


def test_cyclonedx_is_valid_1_6(out_dir: Path) -> None:
    text = (out_dir / "sbom.cdx.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    document = json.loads(text)
    assert (document["bomFormat"], document["specVersion"]) == ("CycloneDX", "1.6")


def test_cyclonedx_has_a_library_per_installed_package(out_dir: Path) -> None:
    components = load_json(out_dir / "sbom.cdx.json")["components"]
    libraries = [c for c in components if c["type"] == "library"]
    assert sorted((c["name"], c["version"]) for c in libraries) == [
        ("libc6", "2.36-9+deb12u10"),
        ("libc6", "2.36-9+deb12u10"),
        ("libstdc++6", "12.2.0-14+deb12u1"),
        ("openssh-server", "1:9.2p1-2+deb12u5"),  # the full version, epoch included
        ("site-tool", "0.1"),
    ]
    ssh = next(c for c in libraries if c["name"] == "openssh-server")
    assert ssh["purl"] == SSH_PURL and ssh["bom-ref"] == SSH_PURL
    parsed = PackageURL.from_string(ssh["purl"])
    assert (parsed.type, parsed.namespace, parsed.version) == ("deb", "debian", "1:9.2p1-2+deb12u5")
    assert parsed.qualifiers == {"arch": "amd64", "distro": "debian-12"}
    assert ssh["hashes"] == [
        {"alg": "MD5", "content": "0b7e2b8c7e1f4b8f2f9e6ad0c1d2e3f4"},
        {"alg": "SHA-256", "content": SSH_SHA256},
    ]
    assert ssh["externalReferences"] == [
        {
            "type": "distribution",
            "url": "http://deb.debian.org/debian/pool/main/o/openssh/"
            "openssh-server_9.2p1-2+deb12u5_amd64.deb",
        }
    ]
    purls = {c["purl"] for c in libraries}
    assert "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=i386&distro=debian-12" in purls
    assert "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14%2Bdeb12u1?arch=amd64&distro=debian-12" in (
        purls
    )
    local = next(c for c in libraries if c["name"] == "site-tool")
    assert "hashes" not in local and "externalReferences" not in local  # in no index


def test_cyclonedx_metadata_describes_the_image_and_its_files(out_dir: Path) -> None:
    document = load_json(out_dir / "sbom.cdx.json")
    metadata = document["metadata"]
    assert metadata["timestamp"] == "2023-11-14T22:13:20+00:00"  # SOURCE_DATE_EPOCH 1700000000
    image = metadata["component"]
    assert (image["type"], image["name"], image["version"]) == (
        "operating-system",
        "image",
        "bookworm",
    )
    squashfs = hashlib.sha256(IMAGE_FILES["image.squashfs"]).hexdigest()
    assert image["hashes"] == [{"alg": "SHA-256", "content": squashfs}]
    tools = [tool["name"] for tool in metadata["tools"]["components"]]
    assert "kiln" in tools
    plan_sha256 = hashlib.sha256(
        json.dumps(
            load_json(out_dir / "build-plan.json"), sort_keys=True, separators=(",", ":")
        ).encode()
    ).hexdigest()
    assert {"name": "kiln:build_plan:sha256", "value": plan_sha256} in metadata["properties"]
    files = {c["name"]: c for c in document["components"] if c["type"] == "file"}
    assert set(files) == set(IMAGE_FILES)  # not packages.json nor build-plan.json
    types = {
        name: next(p["value"] for p in c["properties"] if p["name"] == "kiln:artifact_type")
        for name, c in files.items()
    }
    assert types == {
        "image.squashfs": ROOTFS_SQUASHFS,
        "vmlinuz": KERNEL,
        "initrd": INITRD,
        "image.qcow2": DISK_QCOW2,
    }
    for name, data in IMAGE_FILES.items():
        assert {"alg": "SHA-256", "content": hashlib.sha256(data).hexdigest()} in files[name][
            "hashes"
        ]
    (graph,) = [d for d in document["dependencies"] if d["ref"] == image["bom-ref"]]
    assert SSH_PURL in graph["dependsOn"] and len(graph["dependsOn"]) == 5
    serial = document["serialNumber"]
    assert serial.startswith("urn:uuid:") and uuid.UUID(serial[9:]).version == 5


# --- SPDX 2.3 -------------------------------------------------------------------------------


def test_spdx_is_valid_2_3(out_dir: Path) -> None:
    document = parse_file(str(out_dir / "sbom.spdx.json"))
    assert validate_full_spdx_document(document, "SPDX-2.3") == []
    assert document.creation_info.spdx_version == "SPDX-2.3"


def test_spdx_packages_checksums_purls_and_the_image(out_dir: Path) -> None:
    document = load_json(out_dir / "sbom.spdx.json")
    assert document["creationInfo"]["created"] == "2023-11-14T22:13:20Z"
    assert document["creationInfo"]["creators"] == ["Tool: kiln"]
    packages = {p["SPDXID"]: p for p in document["packages"]}
    image = packages["SPDXRef-Image"]
    assert (image["name"], image["versionInfo"], image["primaryPackagePurpose"]) == (
        "image",
        "bookworm",
        "OPERATING_SYSTEM",
    )
    ssh = packages["SPDXRef-Package-deb-openssh-server-amd64"]
    assert ssh["versionInfo"] == "1:9.2p1-2+deb12u5"
    assert ssh["downloadLocation"] == "NOASSERTION"
    assert {"algorithm": "SHA256", "checksumValue": SSH_SHA256} in ssh["checksums"]
    assert ssh["externalRefs"] == [
        {
            "referenceCategory": "PACKAGE_MANAGER",
            "referenceType": "purl",
            "referenceLocator": SSH_PURL,
        }
    ]
    # SPDX ids take letters, digits, '.' and '-' only; the two libc6 arches stay apart
    assert "SPDXRef-Package-deb-libstdc-6-amd64" in packages
    assert {"SPDXRef-Package-deb-libc6-amd64", "SPDXRef-Package-deb-libc6-i386"} <= set(packages)
    assert len(packages) == 6
    relationships = {
        (r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"])
        for r in document["relationships"]
    }
    assert ("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image") in relationships
    assert ("SPDXRef-Image", "CONTAINS", "SPDXRef-Package-deb-openssh-server-amd64") in (
        relationships
    )
    files = {f["fileName"]: f for f in document["files"]}
    assert set(files) == {f"./{name}" for name in IMAGE_FILES}
    qcow2 = IMAGE_FILES["image.qcow2"]
    assert {
        "algorithm": "SHA256",
        "checksumValue": hashlib.sha256(qcow2).hexdigest(),
    } in files["./image.qcow2"]["checksums"]
    assert ("SPDXRef-Image", "CONTAINS", files["./image.qcow2"]["SPDXID"]) in relationships


# --- reproducibility and the edges -----------------------------------------------------------


def test_equal_builds_give_equal_sboms_and_other_images_other_serials(
    out_dir: Path, tmp_path: Path
) -> None:
    again = build(tmp_path / "again")
    for name in (sbom.CYCLONEDX_FILE, sbom.SPDX_FILE):
        assert (again / name).read_bytes() == (out_dir / name).read_bytes()
    other = build(tmp_path / "other", {**IMAGE_FILES, "vmlinuz": b"another kernel"})
    serials = {load_json(d / sbom.CYCLONEDX_FILE)["serialNumber"] for d in (out_dir, other)}
    assert len(serials) == 2
    namespaces = {load_json(d / sbom.SPDX_FILE)["documentNamespace"] for d in (out_dir, other)}
    assert len(namespaces) == 2


def test_a_build_without_image_files_still_validates(tmp_path: Path) -> None:
    out = build(tmp_path, files={}, release=b"Codename: trixie\n")
    text = (out / sbom.CYCLONEDX_FILE).read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    image = json.loads(text)["metadata"]["component"]
    assert "hashes" not in image and image["version"] == "trixie"
    assert validate_full_spdx_document(parse_file(str(out / sbom.SPDX_FILE))) == []
    document = load_json(out / sbom.SPDX_FILE)
    assert document["packages"][0]["filesAnalyzed"] is False
    ssh = next(p for p in document["packages"] if p["name"] == "openssh-server")
    assert ssh["externalRefs"][0]["referenceLocator"].endswith("distro=debian-13")


@pytest.mark.parametrize(
    ("codename", "version", "namespace", "distro"),
    [
        ("bookworm", "12.11", "debian", "debian-12"),
        ("bookworm", "", "debian", "debian-12"),  # no Release Version: the codename's
        ("forky", "", "debian", "debian-14"),
        ("sid", "", "debian", ""),  # unstable has no number
        ("jammy", "22.04", "ubuntu", "ubuntu-22"),
    ],
)
def test_distro_qualifier(codename: str, version: str, namespace: str, distro: str) -> None:
    assert sbom.distro_of(codename, version, namespace) == distro


def test_spdx_ids_stay_unique_when_names_differ_only_in_symbols() -> None:
    plan = {
        "codename": "bookworm",
        "architecture": "amd64",
        "source_date_epoch": 0,
        "packages": [
            {"name": "a+b", "version": "4:12.2.0-3", "arch": "amd64"},
            {"name": "a-b", "version": "1", "arch": "amd64"},
        ],
    }
    described = sbom.describe(plan, [], [], "rootfs")
    document = sbom.spdx_document(described)
    assert sbom.spdx_problems(document) == []
    ids = [package.spdx_id for package in document.packages]
    assert ids == [
        "SPDXRef-Image",
        "SPDXRef-Package-deb-a-b-amd64",
        "SPDXRef-Package-deb-a-b-amd64-2",
    ]
