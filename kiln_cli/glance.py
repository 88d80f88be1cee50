"""``kiln image``: Kiln's image registry through its Glance v2 face: upload a file as a new
image, list, show, and download one (continuing a partial file, checked against the hash
Glance reports)."""

from __future__ import annotations

import contextlib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import click

from kiln_cli.client import GLANCE, KilnClient
from kiln_cli.errors import Failed, KilnError, NotFound
from kiln_cli.invocation import Invocation, output_option, pass_invocation
from kiln_cli.output import Output, human_size
from kiln_cli.transfer import download, file_digest, upload

DISK_FORMATS = ["raw", "qcow2", "vhd", "vhdx", "vmdk", "vdi", "iso", "ploop", "ami", "ari", "aki"]
CONTAINER_FORMATS = ["bare", "ovf", "ova", "aki", "ari", "ami", "docker", "compressed"]
SHOWN = [
    "id",
    "name",
    "status",
    "size",
    "disk_format",
    "container_format",
    "visibility",
    "os_hash_algo",
    "os_hash_value",
    "checksum",
    "tags",
    "owner",
    "created_at",
    "updated_at",
]


def image_path(image_id: str, suffix: str = "") -> str:
    return f"{GLANCE}/{quote(image_id, safe='')}{suffix}"


def show_image(output: Output, image: dict[str, Any]) -> None:
    if output.json_mode:
        output.json(image)
    else:
        output.fields(image, SHOWN)


def check_hash(image: dict[str, Any], path: Path) -> dict[str, str]:
    """The file against the image's os_hash_value (its os_hash_algo, sha512), else its
    checksum (md5); Failed if it differs. Returns what was checked."""
    algorithm, expected = image.get("os_hash_algo"), image.get("os_hash_value")
    if not (algorithm and expected):
        algorithm, expected = "md5", image.get("checksum")
    if not expected:
        raise Failed(f"image {image['id']} reports no checksum to verify {path} against")
    actual = file_digest(path, str(algorithm))
    if actual != expected:
        raise Failed(
            f"{path}: {algorithm} {actual} is not the image's {expected}; "
            "remove the file and download it again"
        )
    return {"algorithm": str(algorithm), "value": actual}


@click.group("image")
def image_group() -> None:
    """Images in Kiln's registry (the Glance v2 face)."""


@image_group.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="The image's name.")
@click.option("--disk-format", type=click.Choice(DISK_FORMATS), default="raw", show_default=True)
@click.option(
    "--container-format", type=click.Choice(CONTAINER_FORMATS), default="bare", show_default=True
)
@output_option
@pass_invocation
def upload_command(
    invocation: Invocation, file: Path, name: str, disk_format: str, container_format: str
) -> None:
    """Upload FILE as a new image."""
    client, output = invocation.client(), invocation.output
    body = {"name": name, "disk_format": disk_format, "container_format": container_format}
    image = client.post(GLANCE, body)
    try:
        upload(client, "PUT", image_path(image["id"], "/file"), file, output)
    except (KilnError, KeyboardInterrupt):
        _forget(client, image["id"])
        raise
    image = client.get(image_path(image["id"]))
    checked = check_hash(image, file)
    output.note(f"uploaded {file} as image {image['id']} ({checked['algorithm']} verified)")
    show_image(output, image)


def _forget(client: KilnClient, image_id: str) -> None:
    """Delete the image a failed upload left without data (best effort)."""
    with contextlib.suppress(KilnError):
        client.call("DELETE", image_path(image_id))


@image_group.command("download")
@click.argument("image_id")
@click.option(
    "-O",
    "--output-file",
    "output_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write it (default: the image's name in this directory).",
)
@output_option
@pass_invocation
def download_command(invocation: Invocation, image_id: str, output_file: Path | None) -> None:
    """Download image IMAGE_ID's data; a partial file is continued, the result verified."""
    client, output = invocation.client(), invocation.output
    image = client.get(image_path(image_id))
    if image.get("status") not in ("active", "deactivated") or image.get("size") is None:
        raise NotFound(f"image {image_id} has no data to download (status {image.get('status')})")
    target = output_file or Path(PurePosixPath(image.get("name") or image_id).name or image_id)
    got = download(
        client,
        image_path(image_id, "/file"),
        target,
        output,
        resume=True,
        expected_size=int(image["size"]),
    )
    checked = check_hash(image, target)
    resumed = f", continued from byte {got.resumed_from}" if got.resumed_from else ""
    output.note(f"{target}: {human_size(got.size)}{resumed}, {checked['algorithm']} verified")
    if output.json_mode:
        output.json(
            {
                "id": image_id,
                "path": str(target),
                "size": got.size,
                "resumed_from": got.resumed_from,
                "verified": checked,
            }
        )
    else:
        output.line(str(target))


@image_group.command("list")
@output_option
@pass_invocation
def list_command(invocation: Invocation) -> None:
    """List the images you can see."""
    client, output = invocation.client(), invocation.output
    images: list[dict[str, Any]] = []
    page: str | None = GLANCE
    while page:
        body = client.get(page)
        images.extend(body.get("images") or [])
        page = body.get("next")
    if output.json_mode:
        output.json(images)
        return
    output.table(
        ["ID", "NAME", "STATUS", "SIZE", "DISK", "VISIBILITY", "UPDATED"],
        [
            (
                i["id"],
                i.get("name"),
                i.get("status"),
                human_size(i.get("size")),
                i.get("disk_format"),
                i.get("visibility"),
                i.get("updated_at"),
            )
            for i in images
        ],
    )


@image_group.command("show")
@click.argument("image_id")
@output_option
@pass_invocation
def show_command(invocation: Invocation, image_id: str) -> None:
    """Show image IMAGE_ID."""
    client = invocation.client()
    show_image(invocation.output, client.get(image_path(image_id)))
