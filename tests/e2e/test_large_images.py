"""Large image data lives on disk, not in the stack's memory: a 4 GiB Glance image streamed in
through `PUT /v2/images/{id}/file` and out again through its `GET` grows the stack's resident
memory (the sum over the stack's processes: the stack, its front, moto) by less than 256 MiB;
the bytes are files in the data directory, read back whole (md5 and size as sent).

Its own stack, with no build hosts: nothing else moves while it is measured."""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bench.stack_harness import peak_mib, process_tree, reset_peaks
from infra.local.process import StackProcess
from tests.conftest import free_port

pytestmark = pytest.mark.slow
MiB = 1 << 20
GiB = 1 << 30
OCTETS = {"Content-Type": "application/octet-stream"}


class Body:
    """`size` bytes, 1 MiB at a time, each MiB different (its index in its first 8 bytes), md5
    hashed as sent; with a length, so requests sends a Content-Length."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.md5 = hashlib.md5()
        self._block = os.urandom(MiB)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        for index in range(self.size // MiB):
            chunk = struct.pack(">Q", index) + self._block[8:]
            self.md5.update(chunk)
            yield chunk


def resident_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    with StackProcess(
        tmp_path_factory.mktemp("large"), free_port(), free_port(), KILN_BUILD_HOSTS="none"
    ) as running:
        yield running


def put_image(stack: StackProcess, session: requests.Session, body: Body) -> str:
    base = stack.info["glance_url"]
    created = session.post(
        f"{base}/v2/images",
        json={"name": f"large-{body.size}", "disk_format": "raw", "container_format": "bare"},
        timeout=60,
    )
    assert created.status_code == 201, created.text
    image_id = str(created.json()["id"])
    put = session.put(f"{base}/v2/images/{image_id}/file", data=body, headers=OCTETS, timeout=900)
    assert put.status_code == 204, put.text
    return image_id


def read_image(stack: StackProcess, session: requests.Session, image_id: str) -> tuple[str, int]:
    md5, size = hashlib.md5(), 0
    url = f"{stack.info['glance_url']}/v2/images/{image_id}/file"
    with session.get(url, stream=True, timeout=900) as response:
        assert response.status_code == 200, response.text
        for chunk in response.iter_content(4 * MiB):
            md5.update(chunk)
            size += len(chunk)
    return md5.hexdigest(), size


def test_a_4_gib_image_goes_in_and_out_without_the_stack_growing(
    stack: StackProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    session = requests.Session()
    session.headers["X-Auth-Token"] = stack.info["tokens"]["user"]
    assert stack.process is not None
    warm = Body(16 * MiB)  # every code path of an upload and a download loaded
    read_image(stack, session, put_image(stack, session, warm))

    pids = process_tree(stack.process.pid)
    before = resident_mib(pids)
    reset_peaks(pids)
    body = Body(4 * GiB)
    image_id = put_image(stack, session, body)
    after_upload = peak_mib(pids)
    shown = session.get(f"{stack.info['glance_url']}/v2/images/{image_id}", timeout=60).json()
    assert (shown["status"], shown["size"], shown["checksum"]) == (
        "active",
        4 * GiB,
        body.md5.hexdigest(),
    )
    assert stack.data_dir is not None
    on_disk = sum(blob.stat().st_size for blob in (stack.data_dir / "s3" / "blobs").iterdir())
    assert on_disk >= 4 * GiB, "the image's bytes are not files in the data directory"

    assert read_image(stack, session, image_id) == (body.md5.hexdigest(), 4 * GiB)
    peak = peak_mib(pids)
    with capsys.disabled():
        print(
            f"\n4 GiB image: the stack's memory {before:.0f} MiB before, peak "
            f"{after_upload:.0f} MiB uploading, {peak:.0f} MiB with the download"
        )
    assert peak - before < 256
    deleted = session.delete(f"{stack.info['glance_url']}/v2/images/{image_id}", timeout=60)
    assert deleted.status_code == 204
