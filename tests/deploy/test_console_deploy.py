"""What the web console needs from a deployment (docs/console.md): its files inside the API's
Lambda package, and the artifact bucket answering the browser's presigned downloads (CORS,
read-only), which moto's S3 does without being told."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from infra.deploy_check import Synth

CONSOLE = Path(__file__).resolve().parents[2] / "chalicelib" / "console"


def test_the_api_package_carries_every_console_file(assembly: Synth) -> None:
    packages = [
        z for z in assembly.out.glob("asset.*.zip")
        if "app.py" in zipfile.ZipFile(z).namelist()
    ]  # fmt: skip
    assert packages, sorted(p.name for p in assembly.out.iterdir())
    names = set(zipfile.ZipFile(packages[0]).namelist())
    wanted = {f"chalicelib/console/{p.name}" for p in CONSOLE.iterdir() if p.is_file()}
    assert "chalicelib/console/index.html" in wanted
    assert wanted <= names, sorted(wanted - names)


def test_the_artifact_bucket_lets_browsers_read_presigned_downloads(
    templates: dict[str, dict[str, Any]],
) -> None:
    buckets = [
        r["Properties"] for t in templates.values() for r in t.get("Resources", {}).values()
        if r["Type"] == "AWS::S3::Bucket" and "NotificationConfiguration" in r["Properties"]
    ]  # fmt: skip
    (artifacts,) = buckets  # the bucket that notifies the upload queue holds the artifacts
    (rule,) = artifacts["CorsConfiguration"]["CorsRules"]
    assert sorted(rule["AllowedMethods"]) == ["GET", "HEAD"]  # never a write from a browser
    assert "Range" in rule["AllowedHeaders"] and "Content-Range" in rule["ExposedHeaders"]
