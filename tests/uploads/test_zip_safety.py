"""The zip reader of the shared upload checks (chalicelib/domain/uploads/zip_archive.py) on
hostile and good zips built in tmp_path.

A module-level test, unlike Kiln's other tests, which go through a face: the zip reader is for
the coming OMPS face (operator-manifest zips) and no face calls it yet. When OMPS exists, its
upload tests should exercise these cases through its API; until then this is the one place
they are checked. The tar.gz reader beside it is covered through IMS (tests/ims).
"""

from __future__ import annotations

import hashlib
import stat
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.domain.uploads.archive_safety import ArchiveLimits, ArchiveRejected
from chalicelib.domain.uploads.rejection import UploadRejected
from chalicelib.domain.uploads.zip_archive import read_zip

MiB = 1024 * 1024
LIMITS = ArchiveLimits(max_bytes=4 * MiB, max_members=10)
MANIFEST = b"apiVersion: operators.coreos.com/v1alpha1\nkind: ClusterServiceVersion\n"


def chunks(path: Path, size: int = 64 * 1024) -> Iterator[bytes]:
    """The file as an upload arrives: in pieces."""
    with path.open("rb") as file:
        yield from iter(lambda: file.read(size), b"")


def build(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in members:
            archive.writestr(info, data)
    return path


def special(name: str, file_type: int) -> zipfile.ZipInfo:
    """A member whose Unix mode (in the external attributes) is ``file_type``."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (file_type | 0o777) << 16
    return info


def symlink(name: str) -> zipfile.ZipInfo:
    return special(name, stat.S_IFLNK)


def rejected(path: Path, limits: ArchiveLimits = LIMITS) -> str:
    with pytest.raises(ArchiveRejected) as caught:
        read_zip(chunks(path), limits)
    return str(caught.value)


def patch_sizes(path: Path, file_size: int) -> None:
    """Make the (only) member declare ``file_size`` in its local header and central entry."""
    data = bytearray(path.read_bytes())
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    struct.pack_into("<L", data, local + 22, file_size)
    struct.pack_into("<L", data, central + 24, file_size)
    path.write_bytes(bytes(data))


def test_a_good_operator_bundle_is_accepted(tmp_path: Path) -> None:
    path = build(
        tmp_path / "good.zip",
        [
            ("manifests/", b""),
            ("manifests/etcd.clusterserviceversion.yaml", MANIFEST * 50),
            ("manifests/etcd.crd.yaml", b"kind: CustomResourceDefinition\n" * 20),
            ("metadata/annotations.yaml", b"annotations: {}\n"),
            ("package.yaml", b"packageName: etcd\n"),
            (symlink("manifests/latest.yaml"), b"etcd.clusterserviceversion.yaml"),
        ],
    )
    listing = read_zip(chunks(path), LIMITS)
    assert listing.members == 6
    assert listing.size == path.stat().st_size
    assert listing.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert listing.top_level_files == {"package.yaml"}


def test_an_archive_that_expands_past_the_ratio_is_refused_while_unpacking(
    tmp_path: Path,
) -> None:
    # 32 MiB of zeros within the declared cap, but about 1000 times its compressed size
    limits = ArchiveLimits(4 * MiB, 10, max_unpacked_bytes=64 * MiB, ratio_floor=MiB)
    path = tmp_path / "ratio.zip"
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("zeros.bin", "w") as member,
    ):
        for _ in range(32):
            member.write(bytes(MiB))
    assert path.stat().st_size < MiB
    assert rejected(path, limits) == "the archive expands more than 100 times its compressed size"


def test_declared_sizes_past_the_unpacked_cap_are_refused_before_unpacking(
    tmp_path: Path,
) -> None:
    path = build(tmp_path / "declared.zip", [("manifest.yaml", MANIFEST)])
    patch_sizes(path, 64 * MiB)
    assert rejected(path) == "the archive unpacks to more than 33554432 bytes"


def test_too_many_members_are_refused(tmp_path: Path) -> None:
    path = build(tmp_path / "many.zip", [(f"m{i}.yaml", b"") for i in range(11)])
    assert rejected(path) == "the archive has more than 10 members"


def test_a_member_that_unpacks_to_more_than_it_declares_is_refused(tmp_path: Path) -> None:
    path = build(tmp_path / "liar.zip", [("manifest.yaml", bytes(MiB))])
    patch_sizes(path, 10)
    assert rejected(path) == "member 'manifest.yaml' unpacks to more than the 10 bytes it declares"


def test_a_member_that_unpacks_to_less_than_it_declares_is_refused(tmp_path: Path) -> None:
    path = build(tmp_path / "short.zip", [("manifest.yaml", MANIFEST)])
    patch_sizes(path, 1000)
    assert rejected(path) == (
        f"member 'manifest.yaml' unpacks to {len(MANIFEST)} bytes, not the 1000 it declares"
    )


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../escape.yaml", "member '../escape.yaml' climbs out of the archive with '..'"),
        ("manifests/../../x.yaml", "climbs out of the archive with '..'"),
        ("/etc/cron.d/evil", "member '/etc/cron.d/evil' has an absolute path"),
        ("C:/Windows/evil.dll", "member 'C:/Windows/evil.dll' has an absolute path"),
    ],
)
def test_names_outside_the_archive_are_refused(tmp_path: Path, name: str, reason: str) -> None:
    path = build(tmp_path / "names.zip", [("package.yaml", b"x\n"), (name, b"x\n")])
    assert reason in rejected(path)


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("../../etc/passwd", "link 'manifests/evil' points outside the archive"),
        ("/etc/passwd", "link 'manifests/evil' points to an absolute path '/etc/passwd'"),
    ],
)
def test_a_symlink_leaving_the_archive_is_refused(tmp_path: Path, target: str, reason: str) -> None:
    path = build(tmp_path / "link.zip", [(symlink("manifests/evil"), target.encode())])
    assert reason in rejected(path)


def test_devices_and_fifos_are_refused(tmp_path: Path) -> None:
    path = build(tmp_path / "fifo.zip", [(special("pipe", stat.S_IFIFO), b"")])
    assert rejected(path) == "member 'pipe' is a device, fifo or socket"


def test_a_name_twice_is_refused(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="Duplicate name"):
        path = build(tmp_path / "twice.zip", [("a.yaml", b"one\n"), ("a.yaml", b"two\n")])
    assert rejected(path) == "member 'a.yaml' appears more than once"


def test_entries_sharing_their_data_are_refused(tmp_path: Path) -> None:
    """The overlapping-entries bomb: central entries that all point at one member's data."""
    path = build(tmp_path / "overlap.zip", [("a.yaml", MANIFEST)])
    data = path.read_bytes()
    central = data.index(b"PK\x01\x02")
    end = data.index(b"PK\x05\x06")
    entry = data[central:end]
    twin = entry.replace(b"a.yaml", b"b.yaml")
    directory = entry + twin
    record = bytearray(data[end:])
    struct.pack_into("<HHLL", record, 8, 2, 2, len(directory), central)
    path.write_bytes(data[:central] + directory + bytes(record))
    assert rejected(path) == "member 'a.yaml' overlaps another member or the directory"


def test_a_corrupt_member_is_refused(tmp_path: Path) -> None:
    path = build(tmp_path / "crc.zip", [("a.yaml", MANIFEST)])
    data = bytearray(path.read_bytes())
    struct.pack_into("<L", data, data.index(b"PK\x01\x02") + 16, 0)  # the central CRC-32
    path.write_bytes(bytes(data))
    assert rejected(path) == "not a readable zip archive (bad CRC-32 for member 'a.yaml')"


def test_not_a_zip_and_too_large_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not a zip archive\n" * 100)
    assert rejected(junk).startswith("not a readable zip archive (")
    empty = build(tmp_path / "empty.zip", [])
    assert rejected(empty) == "the archive is empty"
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("blob.bin", bytes(2 * MiB))
    limits = ArchiveLimits(max_bytes=MiB, max_members=10)
    assert rejected(big, limits) == f"the archive is larger than the limit of {MiB} bytes"


def test_every_refusal_is_an_upload_rejected(tmp_path: Path) -> None:
    path = build(tmp_path / "names.zip", [("../x", b"")])
    with pytest.raises(UploadRejected, match="climbs out"):
        read_zip(chunks(path), LIMITS)
