"""moto as the local stack starts it (infra/local/moto_process.py), its data in a data dir,
for the tests of the local S3 over files (test_s3_files.py, test_s3_streaming.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import requests
from botocore.config import Config

from tests.conftest import ROOT, free_port

MiB = 1024 * 1024


class Moto:
    """infra/local/moto_process.py as the stack starts it, keeping its data in ``data_dir``;
    started at once unless ``start=False``; restarted on the same port."""

    def __init__(self, data_dir: Path, start: bool = True) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        if start:
            self.start()

    def start(self) -> None:
        env = {**os.environ, "KILN_DATA_DIR": str(self.data_dir), "MOTO_PORT": str(self.port)}
        env.pop("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", None)
        with (self.data_dir.parent / f"moto-{self.port}.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "infra.local.moto_process", "-H", "127.0.0.1"]
                + ["-p", str(self.port)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.time() + 60
        while True:
            try:
                requests.get(f"{self.url}/moto-api/data.json", timeout=2)
                break
            except requests.ConnectionError:
                assert self.process.poll() is None and time.time() < deadline, "moto did not start"
                time.sleep(0.1)
        self.s3 = self.client("s3")

    def client(self, service: str, url: str | None = None) -> Any:
        """A client of this moto (or of the moto at ``url``) that does not retry."""
        return boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url=url or self.url,
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(retries={"max_attempts": 1}),
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def memory(self, field: str) -> int:
        """VmRSS or VmHWM of the moto process, in bytes."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise AssertionError(field)

    def stop(self, kill: bool = False) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        self.process.wait(timeout=20)
        self.process = None

    def restart(self, kill: bool = False) -> None:
        self.stop(kill)
        self.start()


def start_moto(data_dir: Path, running: list[Moto]) -> Moto:
    moto = Moto(data_dir)
    running.append(moto)
    return moto


def multipart(s3: Any, key: str, parts: list[bytes], **extra: Any) -> dict[str, Any]:
    upload = s3.create_multipart_upload(Bucket="kiln", Key=key, **extra)["UploadId"]
    sent = []
    for number, body in enumerate(parts, start=1):
        answer = s3.upload_part(
            Bucket="kiln", Key=key, UploadId=upload, PartNumber=number, Body=body
        )
        sent.append({"PartNumber": number, "ETag": answer["ETag"]})
    return dict(
        s3.complete_multipart_upload(
            Bucket="kiln", Key=key, UploadId=upload, MultipartUpload={"Parts": sent}
        )
    )


def read(s3: Any, key: str, **extra: Any) -> bytes:
    return bytes(s3.get_object(Bucket="kiln", Key=key, **extra)["Body"].read())


def blob_names(data_dir: Path) -> set[str]:
    return {path.name for path in (data_dir / "s3" / "blobs").iterdir()}
