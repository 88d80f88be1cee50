"""Reading an osbuild-composer compose request: each image request becomes an ImagePlan, or the
request is refused with the ComposeRejected subclass that names the problem."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from chalicelib.errors import (
    InvalidComposeRequest,
    InvalidNumberOfImageBuilds,
    InvalidRepository,
    InvalidUploadOptions,
    NoBaseURLInPayloadRepository,
    UnsupportedArchitecture,
    UnsupportedDistribution,
    UnsupportedImageType,
)

ARCHES = ("x86_64", "aarch64")
#: Debian image types: the disk format Kiln makes and the upload target each implies
DEBIAN_IMAGE_TYPES = {
    "guest-image": ("qcow2", "aws.s3"),
    "vsphere": ("vmdk", "aws.s3"),
    "aws": ("raw", "aws"),
    "gcp": ("raw", "gcp"),
    "azure": ("raw", "azure"),
}
ALL_IMAGE_TYPES = (
    "aws",
    "aws-rhui",
    "aws-ha-rhui",
    "aws-sap-rhui",
    "azure",
    "azure-rhui",
    "edge-commit",
    "edge-container",
    "edge-installer",
    "gcp",
    "guest-image",
    "image-installer",
    "vsphere",
)
DEBIAN_RELEASES = {
    "10": "buster",
    "11": "bullseye",
    "12": "bookworm",
    "13": "trixie",
    "14": "forky",
}
#: distributions built by another toolchain: accepted only where a host advertises it
OTHER_FAMILIES = ("rhel", "fedora", "centos")
OTHER_RECIPE_TYPE = "osbuild"
MAX_IMAGES = 16
_SUITE = re.compile(r"^[a-z][a-z0-9-]{1,30}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ACCOUNT = re.compile(r"^\d{12}$")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


@dataclasses.dataclass(frozen=True)
class ImagePlan:
    index: int
    arch: str
    image_type: str
    disk_format: str
    upload: dict[str, Any]  # {"type", "options"}
    mirror: str | None  # the first repository's baseurl, or the build host's mirror
    extra_repositories: list[dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class ComposePlan:
    distribution: str
    family: str  # "debian", or a family another backend builds
    suite: str
    images: list[ImagePlan]
    packages: list[str]
    users: list[dict[str, Any]]
    min_disk_bytes: int
    payload_repositories: list[dict[str, Any]]


def read(body: Any, backend_advertised: bool) -> ComposePlan:
    """The plan for a compose request; ``backend_advertised`` says whether a build host
    advertises the backend for non-Debian distributions."""
    if not isinstance(body, dict):
        raise InvalidComposeRequest("the request body must be a JSON object")
    _no_unknown(
        body,
        (
            "distribution",
            "image_request",
            "image_requests",
            "customizations",
            "koji",
            "fresh_build",  # Kiln's extension: never serve the images from the build cache
        ),
    )
    if not isinstance(body.get("fresh_build", False), bool):
        raise InvalidComposeRequest("fresh_build must be a boolean")
    family, suite = _distribution(body.get("distribution"), backend_advertised)
    requests = _image_requests(body)
    custom = _object(body.get("customizations"), "customizations")
    _no_unknown(
        custom,
        ("packages", "users", "filesystem", "payload_repositories", "subscription"),
        "customizations.",
    )
    if custom.get("subscription") is not None:
        raise InvalidComposeRequest(
            "customizations.subscription registers RHEL systems; it has no meaning for "
            f"{body['distribution']}"
        )
    images = [_image(i, item, family) for i, item in enumerate(requests)]
    return ComposePlan(
        distribution=body["distribution"],
        family=family,
        suite=suite,
        images=images,
        packages=_packages(custom.get("packages")),
        users=_users(custom.get("users")),
        min_disk_bytes=_filesystems(custom.get("filesystem")),
        payload_repositories=_payload_repositories(custom.get("payload_repositories")),
    )


def _no_unknown(body: dict[str, Any], known: tuple[str, ...], where: str = "") -> None:
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise InvalidComposeRequest(
            f"unknown field(s) {', '.join(where + u for u in unknown)}; "
            f"allowed: {', '.join(where + k for k in known)}"
        )


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidComposeRequest(f"{where} must be an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidComposeRequest(f"{where} must be an array")
    return value


def _distribution(value: Any, backend_advertised: bool) -> tuple[str, str]:
    if not isinstance(value, str) or not value:
        raise InvalidComposeRequest("distribution is required, e.g. 'debian-12'")
    family, _, release = value.partition("-")
    if family == "debian" and release:
        suite = DEBIAN_RELEASES.get(release, release)
        if _SUITE.match(suite):
            return "debian", suite
    if family in OTHER_FAMILIES and release:
        if backend_advertised:
            return family, release
        raise UnsupportedDistribution(
            f"distribution '{value}' needs a build host that advertises recipe type "
            f"'{OTHER_RECIPE_TYPE}', and none does; Kiln builds debian-<release> here "
            f"(e.g. debian-12)"
        )
    raise UnsupportedDistribution(
        f"unknown distribution '{value}'; Kiln builds debian-<release or suite> "
        f"(debian-{', debian-'.join(DEBIAN_RELEASES)}, or e.g. debian-bookworm)"
    )


def _image_requests(body: dict[str, Any]) -> list[dict[str, Any]]:
    single, several = body.get("image_request"), body.get("image_requests")
    if single is not None and several is not None:
        raise InvalidNumberOfImageBuilds("give image_request or image_requests, not both")
    if single is not None:
        return [_object(single, "image_request")]
    items = _list(several, "image_requests")
    if not items:
        raise InvalidNumberOfImageBuilds("the compose has no image: give image_request(s)")
    if len(items) > MAX_IMAGES:
        raise InvalidNumberOfImageBuilds(f"at most {MAX_IMAGES} images per compose")
    return [_object(item, f"image_requests[{i}]") for i, item in enumerate(items)]


def _image(index: int, item: dict[str, Any], family: str) -> ImagePlan:
    where = f"image_requests[{index}]"
    _no_unknown(
        item,
        ("architecture", "image_type", "repositories", "ostree", "upload_options"),
        f"{where}.",
    )
    arch = item.get("architecture")
    if arch not in ARCHES:
        raise UnsupportedArchitecture(
            f"{where}.architecture '{arch}' is not supported; use one of {', '.join(ARCHES)}"
        )
    image_type = item.get("image_type")
    if image_type not in ALL_IMAGE_TYPES:
        raise InvalidComposeRequest(
            f"{where}.image_type must be one of {', '.join(ALL_IMAGE_TYPES)}; got {image_type!r}"
        )
    if family == "debian" and image_type not in DEBIAN_IMAGE_TYPES:
        raise UnsupportedImageType(
            f"{where}.image_type '{image_type}' is not built for Debian; "
            f"use one of {', '.join(DEBIAN_IMAGE_TYPES)}"
        )
    if item.get("ostree") is not None:
        raise UnsupportedImageType(f"{where}.ostree: Debian images are not OSTree commits")
    if "repositories" not in item:
        raise InvalidRepository(f"{where}.repositories is required (may be an empty list)")
    repositories = [
        _repository(repo, f"{where}.repositories[{i}]")
        for i, repo in enumerate(_list(item.get("repositories"), f"{where}.repositories"))
    ]
    disk_format, target = DEBIAN_IMAGE_TYPES.get(str(image_type), ("raw", "aws.s3"))
    return ImagePlan(
        index=index,
        arch=str(arch),
        image_type=str(image_type),
        disk_format=disk_format,
        upload=_upload(target, item.get("upload_options"), where),
        mirror=repositories[0]["url"] if repositories else None,
        extra_repositories=repositories[1:],
    )


def _repository(value: Any, where: str) -> dict[str, Any]:
    repo = _object(value, where)
    _no_unknown(
        repo,
        (
            "rhsm",
            "baseurl",
            "mirrorlist",
            "metalink",
            "gpgkey",
            "check_gpg",
            "ignore_ssl",
            "package_sets",
        ),
        f"{where}.",
    )
    if not isinstance(repo.get("rhsm"), bool):
        raise InvalidRepository(f"{where}.rhsm is required (true or false)")
    if repo["rhsm"]:
        raise InvalidRepository(f"{where}: rhsm repositories need a Red Hat subscription")
    return _apt_source(repo, where, InvalidRepository)


def _apt_source(repo: dict[str, Any], where: str, error: type[Exception]) -> dict[str, Any]:
    baseurl = repo.get("baseurl")
    if repo.get("mirrorlist") or repo.get("metalink"):
        raise error(f"{where}: Debian repositories are given by baseurl, not mirrorlist/metalink")
    if not isinstance(baseurl, str) or not re.fullmatch(r"https?://[^\s/]+[^\s]*", baseurl):
        raise error(f"{where}.baseurl must be an http(s) URL of a Debian archive")
    source: dict[str, Any] = {"url": baseurl.rstrip("/")}
    key = repo.get("gpgkey")
    armored = ("-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----END PGP PUBLIC KEY BLOCK-----")
    if key is not None and (not isinstance(key, str) or not all(m in key for m in armored)):
        raise error(f"{where}.gpgkey must be an ASCII-armored OpenPGP public key block")
    if key and repo.get("check_gpg", True) is not False:
        source["key"] = key
    return source


def _payload_repositories(value: Any) -> list[dict[str, Any]]:
    found = []
    for i, item in enumerate(_list(value, "customizations.payload_repositories")):
        where = f"customizations.payload_repositories[{i}]"
        repo = _object(item, where)
        if not repo.get("baseurl"):
            raise NoBaseURLInPayloadRepository(f"{where}.baseurl is required")
        found.append(_apt_source(repo, where, InvalidRepository))
    return found


def _upload(target: str, value: Any, where: str) -> dict[str, Any]:
    options = _object(value, f"{where}.upload_options")
    key = f"{where}.upload_options"
    if target == "aws.s3":
        _no_unknown(options, ("region",), f"{key}.")
        return {"type": target, "options": {"region": _region(options, key, required=False)}}
    if target == "aws":
        _no_unknown(options, ("region", "snapshot_name", "share_with_accounts"), f"{key}.")
        accounts = options.get("share_with_accounts", [])
        if not isinstance(accounts, list) or not all(
            isinstance(a, str) and _ACCOUNT.match(a) for a in accounts
        ):
            raise InvalidUploadOptions(f"{key}.share_with_accounts must be 12-digit account ids")
        name = options.get("snapshot_name")
        if name is not None and (not isinstance(name, str) or not 1 <= len(name) <= 128):
            raise InvalidUploadOptions(f"{key}.snapshot_name must be 1-128 characters")
        return {
            "type": target,
            "options": {
                "region": _region(options, key, required=True),
                "share_with_accounts": accounts,
                **({"snapshot_name": name} if name else {}),
            },
        }
    return {"type": target, "options": options}  # gcp, azure: refused before any build


def _region(options: dict[str, Any], key: str, required: bool) -> str | None:
    region = options.get("region")
    if region is None and not required:
        return None
    if not isinstance(region, str) or not _REGION.match(region):
        raise InvalidUploadOptions(f"{key}.region must be an AWS region such as eu-west-1")
    return region


def _packages(value: Any) -> list[str]:
    packages = _list(value, "customizations.packages")
    for name in packages:
        if not isinstance(name, str) or not _PACKAGE.match(name):
            raise InvalidComposeRequest(
                f"customizations.packages: {name!r} is not a Debian package name "
                "(name, name:arch or name=version)"
            )
    return sorted(set(packages))


def _users(value: Any) -> list[dict[str, Any]]:
    users = []
    for i, item in enumerate(_list(value, "customizations.users")):
        where = f"customizations.users[{i}]"
        user = _object(item, where)
        _no_unknown(user, ("name", "groups", "key", "id", "kind", "href"), f"{where}.")
        name, groups, key = user.get("name"), user.get("groups") or [], user.get("key")
        if not isinstance(name, str) or not _USER.match(name):
            raise InvalidComposeRequest(f"{where}.name must be a user name (a-z, 0-9, _, -)")
        if not isinstance(groups, list) or not all(
            isinstance(g, str) and _USER.match(g) for g in groups
        ):
            raise InvalidComposeRequest(f"{where}.groups must be a list of group names")
        if key is not None and (not isinstance(key, str) or not key.startswith(("ssh-", "ecdsa-"))):
            raise InvalidComposeRequest(f"{where}.key must be an SSH public key line")
        users.append({"name": name, "groups": groups, "key": key})
    return users


def _filesystems(value: Any) -> int:
    """The least disk size the filesystem customizations ask for (all on the root file
    system: Kiln's Debian disks have one root partition)."""
    total = 0
    for i, item in enumerate(_list(value, "customizations.filesystem")):
        where = f"customizations.filesystem[{i}]"
        entry = _object(item, where)
        _no_unknown(entry, ("mountpoint", "min_size"), f"{where}.")
        mountpoint, size = entry.get("mountpoint"), entry.get("min_size")
        if not isinstance(mountpoint, str) or not mountpoint.startswith("/"):
            raise InvalidComposeRequest(f"{where}.mountpoint must be an absolute path")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidComposeRequest(f"{where}.min_size must be a size in bytes")
        total += size
    return total
