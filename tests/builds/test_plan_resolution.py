"""Resolving a build plan on the host (builders/backends/debian_resolve.py, builders/
build_cache.py): what the cache key follows, and what it does not; against a local stand-in
for the package mirror (no network, no build)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from builders import build_cache
from builders.backends import debian_resolve
from builders.backends.base import BuildError
from builders.backends.debian import DebianBackend
from builders.backends.kiwi import KiwiBackend
from builders.backends.noop import NoopBackend
from chalicelib.host_protocol import JobMessage
from tests.builders.helpers import context, serve_files, write_recipe

RELEASE = b"Origin: Debian\nCodename: bookworm\nDate: Sat, 10 May 2025 09:09:43 UTC\n"
RELEASE_EPOCH = 1746868183
REPO_RELEASE = b"Codename: stable\nDate: Mon, 05 May 2025 00:00:00 UTC\n"
RECIPE = "suite: bookworm\nvariant: minbase\npackages: [htop]\n"


@pytest.fixture
def mirror() -> Iterator[tuple[str, dict[str, bytes]]]:
    files = {
        "/debian/dists/bookworm/Release": RELEASE,
        "/extra/dists/stable/Release": REPO_RELEASE,
    }
    with serve_files(files) as url:
        yield url, files


def _plan(tmp_path: Path, mirror: str, text: str = RECIPE, **ctx: Any) -> dict[str, Any]:
    recipe_dir = write_recipe(tmp_path / "recipe", text, {"files/motd": b"hello\n"})
    backend = DebianBackend(environ={"KILN_DEBIAN_MIRROR": f"{mirror}/debian", "PATH": ""})
    return backend.resolve(context(tmp_path, recipe_dir, **ctx))


def test_a_debian_plan_pins_inputs_mirror_packages_and_tools(
    tmp_path: Path, mirror: tuple[str, dict[str, bytes]]
) -> None:
    url, _ = mirror
    plan = _plan(tmp_path, url)
    assert plan["format"] == "kiln-resolved-plan/1" and plan["backend"] == "kiln-debian"
    assert plan["mirror"]["url"] == f"{url}/debian" and plan["mirror"]["suite"] == "bookworm"
    assert plan["mirror"]["release_sha256"] == hashlib.sha256(RELEASE).hexdigest()
    assert plan["packages"] == ["htop"] and plan["recipe"]["packages"] == ["htop"]
    assert [item["path"] for item in plan["inputs"]] == ["files/motd", "recipe.yaml"]
    assert set(plan["tools"]) == {"mmdebstrap", "apt", "dpkg", "mksquashfs", "kiln-agent"}
    assert plan["source_date_epoch"] == 1700000000 and plan["arch"] == "x86_64"
    assert plan["outputs"]["image_root_archive_name"] == "rootfs"
    assert build_cache.plan_key(plan) == build_cache.plan_key(_plan(tmp_path / "again", url))


def test_what_changes_the_key(tmp_path: Path, mirror: tuple[str, dict[str, bytes]]) -> None:
    url, files = mirror
    key = build_cache.plan_key(_plan(tmp_path / "0", url))
    changed = [
        _plan(tmp_path / "1", url, RECIPE + "hostname: other\n"),
        _plan(tmp_path / "2", url, template={"A": "1"}),
        _plan(tmp_path / "3", url, source_date_epoch=1700000001),
        _plan(tmp_path / "4", url, image_root_archive_name="other"),
        _plan(tmp_path / "5", url, arch="aarch64"),
    ]
    files["/debian/dists/bookworm/Release"] = RELEASE + b"SHA256:\n 00 1 main/Packages\n"
    changed.append(_plan(tmp_path / "6", url))  # the mirror's package indexes changed
    keys = {build_cache.plan_key(plan) for plan in changed}
    assert key not in keys and len(keys) == len(changed)


def test_disks_kernels_and_repositories_are_in_the_plan(
    tmp_path: Path, mirror: tuple[str, dict[str, bytes]]
) -> None:
    url, _ = mirror
    text = (
        f"{RECIPE}kernel: true\ndisk:\n  formats: [raw]\n"
        f"repositories:\n  - url: {url}/extra\n    suite: stable\n"
    )
    plan = _plan(tmp_path, url, text)
    assert plan["packages"][0] == "htop" and "linux-image-amd64" in plan["packages"]
    assert set(plan["tools"]) >= {"mkfs.ext4", "qemu-img"}  # the disk tools too
    (repository,) = plan["repositories"]
    assert repository["url"] == f"{url}/extra" and repository["key_sha256"] is None
    assert repository["release_sha256"] == hashlib.sha256(REPO_RELEASE).hexdigest()


def test_epoch_zero_is_the_release_date(
    tmp_path: Path, mirror: tuple[str, dict[str, bytes]]
) -> None:
    url, _ = mirror
    assert _plan(tmp_path, url, source_date_epoch=0)["source_date_epoch"] == RELEASE_EPOCH
    with pytest.raises(BuildError, match="no readable Date field"):
        debian_resolve.release_epoch(b"Codename: bookworm\n")


def _job(**fields: Any) -> JobMessage:
    base: dict[str, Any] = {
        "job_id": "j1",
        "kind": "ims-create",
        "job_type": "create",
        "tenant": "demo",
        "arch": "x86_64",
        "recipe_type": "kiln-noop",
        "bucket": "b",
        "image_id": "i",
        "artifact_prefix": "images/i/",
        "log_key": "l",
        "log_chunk_prefix": "",
        "cancel_key": "c",
        "source_date_epoch": 1,
    }
    return JobMessage(**{**base, **fields})


def test_what_is_not_cacheable(tmp_path: Path) -> None:
    recipe_dir = write_recipe(tmp_path / "recipe", "name: noop\n")
    ctx = context(tmp_path, recipe_dir, recipe_type="kiln-noop")
    assert build_cache.look_up(_job(), NoopBackend(), ctx, None) is None  # no cache prefix
    kiwi = build_cache.look_up(_job(cache_prefix="build-cache/demo/"), KiwiBackend(), ctx, None)
    assert kiwi is None  # KIWI builds do not resolve
    fresh = build_cache.look_up(_job(cache_prefix="build-cache/demo/"), NoopBackend(), ctx, None)
    assert fresh is not None and fresh.hit is None  # use_cache False: not even looked up
    assert fresh.facts() == {
        "key": fresh.key,
        "hit": False,
        "prefix": f"build-cache/demo/{fresh.key}/j1/",
    }


def test_a_hit_fetches_its_disks_only_for_an_upload(aws_env: None, tmp_path: Path) -> None:
    import boto3
    from moto import mock_aws

    from chalicelib.host_protocol import MediaType

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bkt")
        disk, prefix = b"disk-bytes", "build-cache/demo/k/j0/"
        s3.put_object(Bucket="bkt", Key=f"{prefix}disk.raw", Body=disk)
        listed = [
            {
                "name": "disk.raw",
                "type": MediaType.DISK_RAW,
                "link": {"path": f"s3://bkt/{prefix}disk.raw"},
                "sha256": hashlib.sha256(disk).hexdigest(),
            },
            {"name": "img.squashfs", "type": MediaType.ROOTFS_SQUASHFS, "link": {}},
        ]
        hit = build_cache.CacheHit("j0", listed, prefix)
        job = _job(cache_prefix="build-cache/demo/", use_cache=True, bucket="bkt")
        assert build_cache.local_disks(hit, job, s3, tmp_path / "none", False) == []
        (fetched,) = build_cache.local_disks(hit, job, s3, tmp_path / "out", True)
        assert fetched.path.read_bytes() == disk and fetched.type == MediaType.DISK_RAW
        listed[0]["sha256"] = "0" * 64
        with pytest.raises(BuildError, match="does not match its entry"):
            build_cache.local_disks(hit, job, s3, tmp_path / "bad", True)
