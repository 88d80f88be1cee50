"""`kiln image`: upload a file (streamed, the hash Glance computed checked), list, show, and
download it whole, continued from a partial file, already complete, or refused when the
partial file was not a prefix of the image."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from tests.cli.runner import KilnCommand, assert_fails

SIZE = 3 * 1024 * 1024 + 123


@pytest.fixture(scope="module")
def data() -> bytes:
    return os.urandom(SIZE)


def uploaded(kiln_cmd: KilnCommand, tmp_path: Path, data: bytes, name: str) -> dict[str, Any]:
    source = tmp_path / f"{name}.raw"
    source.write_bytes(data)
    ran = kiln_cmd("image", "upload", str(source), "--name", name, "-o", "json")
    assert ran.code == 0, ran
    assert ran.stderr == ""  # no progress bar with -o json
    image: dict[str, Any] = ran.json()
    return image


def test_upload_list_show(kiln_cmd: KilnCommand, tmp_path: Path, data: bytes) -> None:
    image = uploaded(kiln_cmd, tmp_path, data, "disk-a")
    assert image["status"] == "active" and image["size"] == SIZE
    assert image["os_hash_algo"] == "sha512"
    assert image["os_hash_value"] == hashlib.sha512(data).hexdigest()

    listed = kiln_cmd("image", "list", "-o", "json")
    assert listed.code == 0, listed
    assert image["id"] in [i["id"] for i in listed.json()]
    table = kiln_cmd("image", "list")
    row = next(line for line in table.stdout.splitlines() if image["id"] in line)
    assert "disk-a" in row and "active" in row and "3.0 MiB" in row

    shown = kiln_cmd("image", "show", image["id"], "-o", "json")
    assert shown.json() == image
    text = kiln_cmd("image", "show", image["id"])
    assert text.code == 0 and image["os_hash_value"] in text.stdout


def test_upload_in_text_mode_shows_progress_and_the_image(
    kiln_cmd: KilnCommand, tmp_path: Path
) -> None:
    source = tmp_path / "small.qcow2"
    source.write_bytes(b"q" * 5000)
    ran = kiln_cmd("image", "upload", str(source), "--name", "small", "--disk-format", "qcow2")
    assert ran.code == 0, ran
    assert "upload small.qcow2" in ran.stderr and "sha512 verified" in ran.stderr
    assert "qcow2" in ran.stdout and "small" in ran.stdout


def test_download_whole_to_the_images_name(
    kiln_cmd: KilnCommand, tmp_path: Path, data: bytes
) -> None:
    image = uploaded(kiln_cmd, tmp_path, data, "whole")
    workdir = tmp_path / "work"
    workdir.mkdir()
    ran = kiln_cmd("image", "download", image["id"], cwd=workdir)
    assert ran.code == 0, ran
    assert (workdir / "whole").read_bytes() == data
    assert "sha512 verified" in ran.stderr and "download whole" in ran.stderr


def test_a_partial_file_is_continued_with_a_range_request(
    kiln_cmd: KilnCommand, tmp_path: Path, data: bytes
) -> None:
    image = uploaded(kiln_cmd, tmp_path, data, "resumed")
    target = tmp_path / "partial.raw"
    target.write_bytes(data[:1_000_000])
    ran = kiln_cmd("image", "download", image["id"], "-O", str(target), "-o", "json")
    assert ran.code == 0, ran
    assert ran.json() == {
        "id": image["id"],
        "path": str(target),
        "size": SIZE,
        "resumed_from": 1_000_000,
        "verified": {"algorithm": "sha512", "value": hashlib.sha512(data).hexdigest()},
    }
    assert target.read_bytes() == data

    again = kiln_cmd("image", "download", image["id"], "-O", str(target), "-o", "json")
    assert again.code == 0, again
    assert again.json()["resumed_from"] == SIZE  # complete already: only verified


def test_a_partial_file_of_other_bytes_fails_the_hash_check(
    kiln_cmd: KilnCommand, tmp_path: Path, data: bytes
) -> None:
    image = uploaded(kiln_cmd, tmp_path, data, "tampered")
    target = tmp_path / "tampered.raw"
    target.write_bytes(b"\0" * 1000)
    ran = kiln_cmd("image", "download", image["id"], "-O", str(target))
    assert_fails(ran, 1, "sha512", "is not the image's", alone=False)
    assert target.stat().st_size == SIZE


def test_an_image_without_data_has_nothing_to_download(
    kiln_cmd: KilnCommand, served: Any, tmp_path: Path
) -> None:
    created = served.call(
        "POST", "/v2/images", {"name": "empty", "disk_format": "raw", "container_format": "bare"}
    )
    assert created.status_code == 201, created.text
    ran = kiln_cmd("image", "download", created.json()["id"], "-O", str(tmp_path / "x"))
    assert_fails(ran, 4, "has no data to download", "queued")


def test_an_unknown_image_is_not_found(kiln_cmd: KilnCommand) -> None:
    ran = kiln_cmd("image", "show", "00000000-0000-4000-8000-000000000000")
    assert_fails(ran, 4, "404 Not Found", "No image found")
    ran = kiln_cmd("image", "download", "00000000-0000-4000-8000-000000000000")
    assert_fails(ran, 4, "404 Not Found")


def test_bad_upload_input_is_a_usage_error(kiln_cmd: KilnCommand, tmp_path: Path) -> None:
    missing = tmp_path / "nope.raw"
    assert_fails(kiln_cmd("image", "upload", str(missing), "--name", "x"), 2, "does not exist")
    source = tmp_path / "x.raw"
    source.write_bytes(b"x")
    assert_fails(kiln_cmd("image", "upload", str(source)), 2, "Missing option '--name'")
    ran = kiln_cmd("image", "upload", str(source), "--name", "x", "--disk-format", "floppy")
    assert_fails(ran, 2, "'floppy' is not one of")
