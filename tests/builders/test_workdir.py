from __future__ import annotations

from pathlib import Path

import pytest

from builders import workdir


def fake_mountinfo(tmp_path: Path, *points: str) -> Path:
    lines = [f"36 35 98:0 / {p} rw,noatime master:1 - ext3 /dev/root rw" for p in points]
    path = tmp_path / "mountinfo"
    path.write_text("\n".join(["1 0 8:1 / / rw - ext4 /dev/sda1 rw", *lines]) + "\n")
    return path


def test_a_work_dir_with_a_mount_inside_is_never_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = tmp_path / "jobs" / "j1"
    (job / "rootfs" / "proc").mkdir(parents=True)
    (job / "rootfs" / "keep").write_text("x")
    inside = str(job / "rootfs" / "proc").replace(" ", "\\040")
    monkeypatch.setattr(workdir, "MOUNTINFO", fake_mountinfo(tmp_path, inside))
    with pytest.raises(RuntimeError, match="still mounted"):
        workdir.remove(job)
    assert (job / "rootfs" / "keep").exists()


def test_a_work_dir_without_mounts_is_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = tmp_path / "j 2"
    (job / "a").mkdir(parents=True)
    neighbour = str(tmp_path / "j 20").replace(" ", "\\040")  # a prefix, not inside
    monkeypatch.setattr(workdir, "MOUNTINFO", fake_mountinfo(tmp_path, neighbour))
    workdir.remove(job)
    assert not job.exists()
