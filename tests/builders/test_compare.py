"""builders/compare.py: a rebuild's artifacts against the original's, with files on disk and a
stand-in S3 that serves the originals (diffoscope runs when it is installed)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from builders import compare, hand_back
from builders.backends.base import (
    BUILD_LOG,
    BUILD_PLAN_JSON,
    PACKAGES_JSON,
    ROOTFS_SQUASHFS,
    Artifact,
    BuildError,
)
from chalicelib.host_protocol import JobMessage, MediaType

BUCKET = "kiln-artifacts"
PREFIX = "images/11111111-1111-1111-1111-111111111111/"


class FakeS3:
    """download_file from a dict of keys; records what was fetched."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.fetched: list[str] = []

    def download_file(self, bucket: str, key: str, target: str) -> None:
        assert bucket == BUCKET
        if key not in self.objects:
            raise RuntimeError(f"An error occurred (404) when calling HeadObject: {key}")
        self.fetched.append(key)
        Path(target).write_bytes(self.objects[key])


def plan(**changes: Any) -> bytes:
    document: dict[str, Any] = {
        "format": "kiln-build-plan/1",
        "recipe": {"suite": "bookworm"},
        "template_dictionary": {},
        "mirror": "http://deb.example/debian",
        "suite": "bookworm",
        "codename": "bookworm",
        "release_sha256": "a" * 64,
        "architecture": "amd64",
        "source_date_epoch": 1700000000,
        "repositories": [],
        "packages": [
            {"name": "bash", "version": "5.2.15-2", "arch": "amd64", "sha256": "b" * 64},
            {"name": "dpkg", "version": "1.21.22", "arch": "amd64", "sha256": "c" * 64},
        ],
        "tools": {"mmdebstrap": "mmdebstrap 1.3.5", "kiln-agent": "python 3.11.2"},
        "inputs": [{"path": "recipe.yaml", "sha256": "d" * 64}],
    }
    document.update(changes)
    return (json.dumps(document, indent=2) + "\n").encode()


def setup(
    tmp_path: Path, originals: dict[str, tuple[str, bytes]], rebuilt: dict[str, tuple[str, bytes]]
) -> tuple[JobMessage, list[Artifact], FakeS3]:
    """(name -> (type, bytes)) for both sides: the job, the rebuilt artifacts, the S3."""
    out = tmp_path / "out"
    out.mkdir()
    artifacts = []
    for name, (kind, data) in rebuilt.items():
        (out / name).write_bytes(data)
        artifacts.append(Artifact(out / name, kind))
    listed = [
        {
            "key": f"{PREFIX}{name}",
            "type": kind,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        for name, (kind, data) in originals.items()
    ]
    job = JobMessage(
        job_id="check-1",
        kind="ims-rebuild-check",
        job_type="create",
        tenant="demo",
        arch="x86_64",
        recipe_type="kiln-debian",
        bucket=BUCKET,
        image_id="22222222-2222-2222-2222-222222222222",
        artifact_prefix="images/22222222-2222-2222-2222-222222222222/",
        log_key="jobs/check-1/build.log",
        log_chunk_prefix="",
        cancel_key="control/jobs/check-1/cancel",
        source_date_epoch=1700000000,
        compare_with={"image_id": "orig", "node": "node-a", "artifacts": listed},
    )
    s3 = FakeS3({f"{PREFIX}{name}": data for name, (_kind, data) in originals.items()})
    return job, artifacts, s3


def run(tmp_path: Path, originals: dict, rebuilt: dict) -> tuple[dict[str, Any], FakeS3]:
    job, artifacts, s3 = setup(tmp_path, originals, rebuilt)
    lines: list[str] = []
    result = compare.compare_with_original(job, artifacts, s3, tmp_path / "work", lines.append)
    json.dumps(result)  # it travels as JSON
    return result, s3


def by_name(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in result["artifacts"]}


def test_identical_artifacts_are_reproducible_and_nothing_is_downloaded(tmp_path: Path) -> None:
    files = {
        "rootfs.squashfs": (ROOTFS_SQUASHFS, b"root bytes"),
        "packages.json": (PACKAGES_JSON, b"[]\n"),
        "build-plan.json": (BUILD_PLAN_JSON, plan()),
    }
    logs = {"build.log": (BUILD_LOG, b"a log naming the job")}
    rebuilt_logs = {"build.log": (BUILD_LOG, b"another log")}
    result, s3 = run(tmp_path, {**files, **logs}, {**files, **rebuilt_logs})
    assert result["verdict"] == "reproducible" and result["reproducible"] is True
    assert result["original_node"] == "node-a" and result["image_id"] == "orig"
    assert set(by_name(result)) == {"rootfs.squashfs", "packages.json", "build-plan.json"}
    assert all(row["identical"] for row in result["artifacts"])
    row = by_name(result)["rootfs.squashfs"]
    assert row["size"] == [10, 10] and row["first_difference"] is None
    assert row["original_sha256"] == row["rebuilt_sha256"]
    assert result["inputs"] == {"compared": True, "changes": []}
    assert result["diffoscope"] == {} and s3.fetched == []
    assert result["summary"].startswith("Reproducible")
    assert "3 of 3 artifacts are identical" in result["summary"]


def test_a_differing_artifact_is_named_with_sizes_and_first_difference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compare, "diffoscope_command", lambda: None)
    result, s3 = run(
        tmp_path,
        {
            "rootfs.squashfs": (ROOTFS_SQUASHFS, b"root bytes 1"),
            "build-plan.json": (BUILD_PLAN_JSON, plan()),
        },
        {
            "rootfs.squashfs": (ROOTFS_SQUASHFS, b"root bytes 2!"),
            "build-plan.json": (BUILD_PLAN_JSON, plan()),
        },
    )
    assert result["verdict"] == "not_reproducible" and result["reproducible"] is False
    row = by_name(result)["rootfs.squashfs"]
    assert not row["identical"] and row["size"] == [12, 13] and row["first_difference"] == 11
    assert s3.fetched == [f"{PREFIX}rootfs.squashfs"]
    assert result["diffoscope"] == {"rootfs.squashfs": compare.NOT_INSTALLED}
    summary = result["summary"]
    assert summary.startswith("Not reproducible")
    assert "rootfs.squashfs differs (12 vs 13 bytes, first difference at byte 11)" in summary
    assert "same inputs" in summary and "diffoscope is not installed" in summary


def test_a_moved_mirror_is_inputs_changed_not_a_verdict(tmp_path: Path) -> None:
    newer = plan(
        release_sha256="e" * 64,
        packages=[
            {"name": "bash", "version": "5.2.15-2+deb12u1", "arch": "amd64", "sha256": "f" * 64},
            {"name": "dpkg", "version": "1.21.22", "arch": "amd64", "sha256": "c" * 64},
        ],
    )
    result, _ = run(
        tmp_path,
        {
            "rootfs.squashfs": (ROOTFS_SQUASHFS, b"old root"),
            "build-plan.json": (BUILD_PLAN_JSON, plan()),
        },
        {
            "rootfs.squashfs": (ROOTFS_SQUASHFS, b"new root"),
            "build-plan.json": (BUILD_PLAN_JSON, newer),
        },
    )
    assert result["verdict"] == "inputs_changed" and result["reproducible"] is None
    changes = result["inputs"]["changes"]
    assert any("Release file changed" in change and "moved on" in change for change in changes)
    assert any("bash:amd64 5.2.15-2" in c and "5.2.15-2+deb12u1" in c for c in changes)
    assert not any("dpkg" in change for change in changes)
    assert result["summary"].startswith("Inconclusive")
    assert "did not use the same inputs" in result["summary"]


def test_plan_changes_name_tools_repositories_and_the_recipe() -> None:
    original = json.loads(plan(repositories=[{"url": "http://x/", "release_sha256": "1"}]))
    rebuilt = json.loads(
        plan(
            repositories=[{"url": "http://x/", "release_sha256": "2"}],
            tools={"mmdebstrap": "mmdebstrap 1.4.0", "kiln-agent": "python 3.11.2"},
            inputs=[{"path": "recipe.yaml", "sha256": "9" * 64}],
            source_date_epoch=1700000001,
        )
    )
    changes = compare.plan_changes(original, rebuilt)
    assert "source_date_epoch: 1700000000 → 1700000001" in changes
    assert "the recipe archive's files changed" in changes
    assert "repository http://x/: its Release file changed" in changes
    assert "build tools differ: mmdebstrap mmdebstrap 1.3.5 → mmdebstrap 1.4.0" in changes
    assert compare.plan_changes(original, original) == []


def test_missing_and_extra_artifacts_are_rows_and_not_reproducible(tmp_path: Path) -> None:
    result, _ = run(
        tmp_path,
        {
            "rootfs.squashfs": (ROOTFS_SQUASHFS, b"root"),
            "vmlinuz": (MediaType.KERNEL, b"kernel"),
        },
        {
            "rootfs.squashfs": (ROOTFS_SQUASHFS, b"root"),
            "extra.json": (PACKAGES_JSON, b"{}"),
        },
    )
    rows = by_name(result)
    assert rows["vmlinuz"]["rebuilt_sha256"] is None and not rows["vmlinuz"]["identical"]
    assert rows["extra.json"]["original_sha256"] is None and rows["extra.json"]["size"] == [None, 2]
    assert result["verdict"] == "not_reproducible"
    assert "vmlinuz was not rebuilt" in result["summary"]
    assert "extra.json is only in the rebuild" in result["summary"]
    assert result["inputs"]["compared"] is False
    assert "no build plan" in result["summary"]


def test_an_original_gone_from_s3_fails_the_check(tmp_path: Path) -> None:
    job, artifacts, s3 = setup(
        tmp_path,
        {"rootfs.squashfs": (ROOTFS_SQUASHFS, b"a")},
        {"rootfs.squashfs": (ROOTFS_SQUASHFS, b"b")},
    )
    s3.objects.clear()
    with pytest.raises(BuildError, match="cannot fetch the original artifact"):
        compare.compare_with_original(job, artifacts, s3, tmp_path / "work", lambda _: None)


def test_first_difference(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    big = bytes(range(256)) * 8192  # 2 MiB: more than one read
    a.write_bytes(big)
    b.write_bytes(big)
    assert compare.first_difference(a, b) is None
    b.write_bytes(big[:-1] + b"\x00")
    assert compare.first_difference(a, b) == len(big) - 1
    b.write_bytes(big + b"tail")
    assert compare.first_difference(a, b) == len(big)


def test_the_avoided_node_hands_a_check_back_a_few_times() -> None:
    message = JobMessage.from_dict(
        {
            "job_id": "j",
            "kind": "ims-rebuild-check",
            "job_type": "create",
            "tenant": "t",
            "arch": "x86_64",
            "recipe_type": "kiln-noop",
            "bucket": BUCKET,
            "image_id": "i",
            "artifact_prefix": "images/i/",
            "log_key": "k",
            "log_chunk_prefix": "",
            "cancel_key": "c",
            "source_date_epoch": 0,
            "compare_with": {"image_id": "o", "node": "node-a", "avoid_node": "node-a"},
        }
    )
    assert hand_back.hands_back(message, "node-a", 1)
    assert not hand_back.hands_back(message, "node-a", hand_back.HAND_BACK_TIMES + 1)
    assert not hand_back.hands_back(message, "node-b", 1)
    received = {
        "Body": json.dumps({"job": message.to_dict(), "token": "t"}),
        "Attributes": {"ApproximateReceiveCount": "2"},
    }
    assert hand_back.handed_back_for(received, "node-a") == hand_back.HAND_BACK_SECONDS
    assert hand_back.handed_back_for(received, "node-b") is None
    assert hand_back.handed_back_for({"Body": "not json"}, "node-a") is None


def test_diffoscope_cut_keeps_the_start_and_says_how_much_went() -> None:
    assert compare.cut("abc", 10) == "abc"
    assert compare.cut("x" * 20, 5) == "xxxxx\n[... 15 more characters cut]"


needs_diffoscope = pytest.mark.skipif(
    compare.diffoscope_command() is None or shutil.which("mksquashfs") is None,
    reason="diffoscope and squashfs-tools are not installed",
)


@needs_diffoscope
def test_diffoscope_reports_what_differs_inside_a_squashfs(tmp_path: Path) -> None:
    images = {}
    for side, text in (("original", "hello\n"), ("rebuilt", "hellp\n")):
        root = tmp_path / f"{side}-root"
        (root / "etc").mkdir(parents=True)
        (root / "etc" / "motd").write_text(text)
        target = tmp_path / f"{side}.squashfs"
        subprocess.run(
            ["mksquashfs", str(root), str(target), "-quiet", "-noappend", "-reproducible"]
            + ["-mkfs-time", "0", "-all-time", "0"],
            check=True,
            capture_output=True,
        )
        images[side] = target.read_bytes()
    result, _ = run(
        tmp_path,
        {"rootfs.squashfs": (ROOTFS_SQUASHFS, images["original"])},
        {"rootfs.squashfs": (ROOTFS_SQUASHFS, images["rebuilt"])},
    )
    report = result["diffoscope"]["rootfs.squashfs"]
    assert "/etc/motd" in report and "-hello" in report and "+hellp" in report
    assert str(tmp_path) not in report  # the host's paths are not in the report
    assert len(report) <= compare.DIFFOSCOPE_KEPT + 100
    assert "diffoscope's report" in result["summary"]
