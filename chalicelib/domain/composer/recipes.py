"""The kiln-debian recipe Kiln generates for each image of a compose (see docs/recipes.md), and
its archive as the build host fetches it."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from typing import Any

import yaml

from chalicelib.domain.composer.request import ComposePlan, ImagePlan

#: what every composer image gets: an init system, networking by DHCP, and SSH for its users
BASE_PACKAGES = ("systemd-sysv", "udev", "openssh-server", "sudo", "iproute2", "ca-certificates")
NETWORK_UNIT = "/etc/systemd/network/80-kiln-dhcp.network"
NETWORK_SETUP = (
    "if systemctl cat systemd-networkd.service >/dev/null 2>&1; then "
    f"mkdir -p /etc/systemd/network && printf '%s\\n' '[Match]' 'Name=en* eth*' '' '[Network]' "
    f"'DHCP=yes' > {NETWORK_UNIT} && systemctl enable systemd-networkd; fi"
)
GIB = 1 << 30


def recipe(plan: ComposePlan, image: ImagePlan) -> dict[str, Any]:
    """The recipe document for one image request."""
    groups = sorted({group for user in plan.users for group in user["groups"]})
    document: dict[str, Any] = {
        "suite": plan.suite,
        "variant": "minbase",
        "packages": sorted(set(BASE_PACKAGES) | set(plan.packages)),
        "kernel": True,
        "hostname": "localhost",
        "customize": [NETWORK_SETUP],
        "disk": {"formats": [image.disk_format]},
    }
    if image.mirror:
        document["mirror"] = image.mirror
    repositories = _distinct([*image.extra_repositories, *plan.payload_repositories], image.mirror)
    if repositories:
        document["repositories"] = repositories
    if groups:
        document["groups"] = groups
    if plan.users:
        document["users"] = [_user(user) for user in plan.users]
    if plan.min_disk_bytes:
        mib = -(-plan.min_disk_bytes // (1 << 20))
        document["disk"]["min_size"] = f"{max(mib, 256)}M"
    return document


def _distinct(repositories: list[dict[str, Any]], mirror: str | None) -> list[dict[str, Any]]:
    """apt refuses one source listed twice: drop repeats of the mirror and of each other."""
    seen = {mirror} if mirror else set()
    kept = []
    for repository in repositories:
        if repository["url"] not in seen:
            seen.add(repository["url"])
            kept.append(repository)
    return kept


def _user(user: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": user["name"]}
    if user["groups"]:
        entry["groups"] = list(user["groups"])
    if user["key"]:
        entry["ssh_authorized_keys"] = [user["key"]]
    return entry


def other_recipe(body: dict[str, Any], image: ImagePlan) -> dict[str, Any]:
    """For a distribution another backend builds: the compose request itself, one image."""
    requests = body.get("image_requests") or [body.get("image_request")]
    single = {k: v for k, v in body.items() if k not in ("image_request", "image_requests")}
    return {"compose_request": {**single, "image_request": requests[image.index]}}


def archive(document: dict[str, Any], name: str = "recipe.yaml") -> bytes:
    """A reproducible .tar.gz holding the recipe (same document, same bytes)."""
    text = (
        yaml.safe_dump(document, sort_keys=False)
        if name.endswith(".yaml")
        else json.dumps(document, indent=2, sort_keys=True)
    ).encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(text), 0o644, 0
        tar.addfile(info, io.BytesIO(text))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()
