"""`kiln operator push`: an operator manifest zip to OMPS (v2), with the next version or an
explicit one; what OMPS refuses shown as OMPS says it, and what is not a zip refused here."""

from __future__ import annotations

from pathlib import Path

from tests.cli.runner import KilnCommand, assert_fails
from tests.omps import operators as ops

FLAT_FILES = ["crd.yml", "csv.yaml", "packages.yaml"]


def zip_file(tmp_path: Path, content: bytes, name: str = "operator.zip") -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def test_a_push_takes_the_next_version_or_the_one_given(
    kiln_cmd: KilnCommand, tmp_path: Path
) -> None:
    archive = zip_file(tmp_path, ops.flat_operator())
    first = kiln_cmd("operator", "push", archive, "cli-org", "-o", "json")
    assert first.code == 0, first
    assert first.json() == {
        "organization": "cli-org",
        "repo": ops.PACKAGE,
        "version": "1.0.0",
        "extracted_files": FLAT_FILES,
    }
    explicit = kiln_cmd("operator", "push", archive, "cli-org", "--version", "4.2.0")
    assert explicit.code == 0, explicit
    assert "4.2.0" in explicit.stdout and f"pushed {ops.PACKAGE} 4.2.0" in explicit.stderr


def test_a_zip_without_an_operator_is_refused_with_omps_message(
    kiln_cmd: KilnCommand, tmp_path: Path
) -> None:
    archive = zip_file(tmp_path, ops.zip_of({"README.txt": "no manifests here"}))
    ran = kiln_cmd("operator", "push", archive, "cli-org")
    assert_fails(ran, 6, "400 Bad Request", "packageName")


def test_the_same_version_twice_is_an_api_error(kiln_cmd: KilnCommand, tmp_path: Path) -> None:
    archive = zip_file(tmp_path, ops.flat_operator())
    assert kiln_cmd("operator", "push", archive, "twice-org", "--version", "1.0.0").code == 0
    ran = kiln_cmd("operator", "push", archive, "twice-org", "--version", "1.0.0")
    assert_fails(ran, 6, "exists already")


def test_a_file_that_is_not_a_zip_or_not_there_is_bad_input(
    kiln_cmd: KilnCommand, tmp_path: Path
) -> None:
    not_zip = zip_file(tmp_path, b"plain text", "manifests.zip")
    assert_fails(kiln_cmd("operator", "push", not_zip, "cli-org"), 2, "is not a zip archive")
    missing = str(tmp_path / "missing.zip")
    assert_fails(kiln_cmd("operator", "push", missing, "cli-org"), 2, "does not exist")
    assert_fails(kiln_cmd("operator", "push", not_zip), 2, "Missing argument 'ORG'")
