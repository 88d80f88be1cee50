"""The ``kiln-debian`` recipe: parsing, validation and templating of recipe.yaml.

Pure python (no subprocesses). ``builders/backends/debian.py`` runs the tools; everything that
can be checked before a build starts is checked here, so mistakes fail fast with a message
that names the field and says what is allowed. The format is documented in docs/recipes.md.
The package mirror is chosen in debian_mirror.py, the customize script made in debian_script.py.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import stat
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from builders.backends.base import BuildError

RECIPE_FILE = "recipe.yaml"
DEBIAN_ARCHES = {"x86_64": "amd64", "aarch64": "arm64"}
VARIANTS = ("essential", "apt", "required", "minbase", "buildd", "important", "standard")
COMPRESSIONS = ("zstd", "xz", "gzip", "lz4", "lzo")
DEFAULT_SHELL = "/bin/bash"
DEFAULT_HOSTNAME = "localhost"
FIELDS = (
    "suite",
    "variant",
    "mirror",
    "components",
    "packages",
    "kernel",
    "hostname",
    "users",
    "files",
    "customize",
    "squashfs_compression",
    "disk",
)
USER_FIELDS = ("name", "uid", "groups", "shell", "ssh_authorized_keys")
FILE_FIELDS = ("src", "dest", "mode", "owner", "template")
DISK_FIELDS = ("formats", "size")
DISK_FORMATS = ("qcow2", "raw", "vmdk")
DISK_MIN_SIZE = 256 << 20
DISK_MAX_SIZE = 16 << 40
_SIZE_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

_TEMPLATE_KEY = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_SUITE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
_COMPONENT = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# name, optional :arch, optional =version or /release (what apt and --include accept)
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?([=/][A-Za-z0-9.+:~-]+)?$")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
_ACCOUNT = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_MODE = re.compile(r"^0?[0-7]{3,4}$")
_SIZE = re.compile(r"^([0-9]+)\s*([KMGT])(iB)?$")


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    uid: int | None
    groups: tuple[str, ...]
    shell: str
    ssh_authorized_keys: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class FileCopy:
    src: Path  # resolved, inside the recipe directory
    src_in_archive: str  # as the recipe wrote it, for messages
    dest: str  # absolute, normalised path inside the image
    mode: str  # octal, e.g. "0644"
    owner: str  # "user" or "user:group" (names inside the image)
    template: bool  # substitute {{KEY}} if the file is UTF-8 text


@dataclasses.dataclass(frozen=True)
class Disk:
    formats: tuple[str, ...]  # qcow2, raw, vmdk: one artifact each
    size: int | None  # bytes, a whole number of MiB; None: the root file system + headroom


@dataclasses.dataclass(frozen=True)
class Recipe:
    suite: str
    variant: str
    mirror: str | None  # None: decided by the build host (see resolve_mirror)
    components: tuple[str, ...]
    packages: tuple[str, ...]
    kernel: bool
    hostname: str
    users: tuple[User, ...]
    files: tuple[FileCopy, ...]
    customize: tuple[str, ...]
    squashfs_compression: str
    disk: Disk | None = None  # also make a bootable GPT disk image (disk_image.py)


def debian_arch(arch: str) -> str:
    """IMS arch spelling (x86_64, aarch64) to Debian's (amd64, arm64)."""
    try:
        return DEBIAN_ARCHES[arch]
    except KeyError:
        raise BuildError(
            f"unsupported arch {arch!r}; use one of {', '.join(DEBIAN_ARCHES)}"
        ) from None


def kernel_packages(debarch: str) -> tuple[str, ...]:
    return (f"linux-image-{debarch}", "initramfs-tools")


def render_template(text: str, template: Mapping[str, str], where: str) -> str:
    """Replace every ``{{KEY}}``; BuildError naming the keys ``template`` does not define."""
    missing = sorted({key for key in _TEMPLATE_KEY.findall(text) if key not in template})
    if missing:
        defined = ", ".join(sorted(template)) or "none"
        raise BuildError(
            f"{where} uses template key(s) {', '.join(missing)} that the recipe's "
            f"template_dictionary does not define (defined keys: {defined}); "
            "add them to template_dictionary or remove the {{...}} placeholders"
        )
    return _TEMPLATE_KEY.sub(lambda match: str(template[match.group(1)]), text)


def load_recipe(recipe_dir: Path, template: Mapping[str, str]) -> Recipe:
    """Read, template and validate ``recipe.yaml`` from an unpacked recipe archive."""
    path = recipe_dir / RECIPE_FILE
    if not path.is_file():
        raise BuildError(f"the recipe archive has no {RECIPE_FILE} at its top level")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BuildError(f"{RECIPE_FILE} is not UTF-8 text") from None
    return parse_recipe(render_template(text, template, RECIPE_FILE), recipe_dir)


def parse_recipe(text: str, recipe_dir: Path) -> Recipe:
    """Validate already-templated recipe.yaml text; file paths are checked against recipe_dir."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BuildError(f"{RECIPE_FILE} is not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise BuildError(f"{RECIPE_FILE} must be a mapping of fields (suite: ..., packages: ...)")
    _reject_unknown(data, FIELDS, RECIPE_FILE)
    kernel = _boolean(data, "kernel", default=False)
    return Recipe(
        suite=_matching(data, "suite", _SUITE, "a Debian suite name like bookworm", required=True),
        variant=_choice(data, "variant", VARIANTS, "minbase"),
        mirror=_mirror(data.get("mirror")),
        components=_matching_list(data, "components", _COMPONENT, "like main", ("main",)),
        packages=_matching_list(data, "packages", _PACKAGE, "Debian package names", ()),
        kernel=kernel,
        hostname=_matching(data, "hostname", _HOSTNAME, "a host name", DEFAULT_HOSTNAME),
        users=tuple(_user(item, f"users[{i}]") for i, item in enumerate(_list(data, "users"))),
        files=tuple(
            _file(item, f"files[{i}]", recipe_dir) for i, item in enumerate(_list(data, "files"))
        ),
        customize=_strings(data, "customize", "shell commands"),
        squashfs_compression=_choice(data, "squashfs_compression", COMPRESSIONS, "zstd"),
        disk=_disk(data.get("disk"), kernel) if "disk" in data else None,
    )


def find_kernel_and_initrd(boot_dir: Path, kernel_required: bool) -> tuple[Path, Path] | None:
    """/boot/vmlinuz-VERSION and /boot/initrd.img-VERSION of the image's one kernel, if any."""
    kernels = _regular_files(boot_dir, "vmlinuz-")
    if not kernels:
        if kernel_required:
            raise BuildError("kernel: true but the image has no /boot/vmlinuz-*")
        return None
    if len(kernels) > 1:
        names = ", ".join(kernel.name for kernel in kernels)
        raise BuildError(f"the image has several kernels ({names}); install exactly one")
    version = kernels[0].name.removeprefix("vmlinuz-")
    initrds = _regular_files(boot_dir, f"initrd.img-{version}")
    if not initrds:
        raise BuildError(
            f"the image has /boot/vmlinuz-{version} but no /boot/initrd.img-{version}; "
            "install initramfs-tools (kernel: true does) or dracut"
        )
    return kernels[0], initrds[0]


def _regular_files(directory: Path, prefix: str) -> list[Path]:
    """Regular files named prefix* (not symlinks: they could point outside the image)."""
    if not directory.is_dir() or directory.is_symlink():
        return []
    return sorted(
        path
        for path in directory.iterdir()
        if path.name.startswith(prefix) and stat.S_ISREG(path.lstat().st_mode)
    )


# --- validation helpers ----------------------------------------------------------------------


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return str(problem)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"


def _reject_unknown(data: dict[Any, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise BuildError(
                f"unknown field {key!r} in {where}{hint}; allowed fields: {', '.join(allowed)}"
            )


def _describe(value: object) -> str:
    return f"{type(value).__name__} {value!r}"[:120]


def _string(data: dict[Any, Any], key: str, where: str, default: str | None) -> str | None:
    value = data.get(key, default)
    if value is None and default is None and key in data:
        raise BuildError(f"{where}{key} must not be empty")
    if value is not None and not isinstance(value, str):
        raise BuildError(f"{where}{key} must be a string, got {_describe(value)}")
    return value


def _matching(
    data: dict[Any, Any],
    key: str,
    pattern: re.Pattern[str],
    what: str,
    default: str | None = None,
    *,
    required: bool = False,
    where: str = "",
) -> str:
    if required and key not in data:
        raise BuildError(f"{RECIPE_FILE} must set {where}{key} ({what})")
    value = _string(data, key, where, default)
    if value is None or not pattern.match(value):
        raise BuildError(f"{where}{key} must be {what}, got {value!r}")
    return value


def _choice(data: dict[Any, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = data.get(key, default)
    if value not in allowed:
        raise BuildError(f"{key} must be one of {', '.join(allowed)}; got {value!r}")
    return str(value)


def _boolean(data: dict[Any, Any], key: str, default: bool, where: str = "") -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise BuildError(f"{where}{key} must be true or false, got {_describe(value)}")
    return value


def _list(data: dict[Any, Any], key: str, where: str = "") -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BuildError(
            f"{where}{key} must be a list (YAML '- item' lines), got {_describe(value)}"
        )
    return value


def _strings(data: dict[Any, Any], key: str, what: str, where: str = "") -> tuple[str, ...]:
    items = _list(data, key, where)
    for index, item in enumerate(items):
        if not isinstance(item, str) or not item.strip():
            raise BuildError(
                f"{where}{key}[{index}] must be a non-empty string ({what}), got {_describe(item)}"
            )
    return tuple(items)


def _matching_list(
    data: dict[Any, Any],
    key: str,
    pattern: re.Pattern[str],
    what: str,
    default: tuple[str, ...],
    where: str = "",
) -> tuple[str, ...]:
    if data.get(key) is None:
        return default
    items = _strings(data, key, what, where)
    for index, item in enumerate(items):
        if not pattern.match(item):
            raise BuildError(f"{where}{key}[{index}] {item!r} is not valid: expected {what}")
    return items


def _mirror(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.match(r"^https?://[^\s'\"]+$", value):
        raise BuildError(f"mirror must be an http:// or https:// URL, got {value!r}")
    return value


def _mapping(item: object, where: str, allowed: tuple[str, ...]) -> dict[Any, Any]:
    if not isinstance(item, dict):
        raise BuildError(f"{where} must be a mapping ({', '.join(allowed)}), got {_describe(item)}")
    _reject_unknown(item, allowed, where)
    return item


def _user(item: object, where: str) -> User:
    data = _mapping(item, where, USER_FIELDS)
    prefix = f"{where}."
    account = "a lower-case account name like kiln"
    uid = data.get("uid")
    if uid is not None and (isinstance(uid, bool) or not isinstance(uid, int) or uid < 0):
        raise BuildError(f"{prefix}uid must be a non-negative integer, got {_describe(uid)}")
    keys = _strings(data, "ssh_authorized_keys", "one public key line", prefix)
    for index, key in enumerate(keys):
        if "\n" in key.strip() or "\0" in key:
            raise BuildError(f"{prefix}ssh_authorized_keys[{index}] must be a single line")
    return User(
        name=_matching(data, "name", _ACCOUNT, account, required=True, where=prefix),
        uid=uid,
        groups=_matching_list(data, "groups", _ACCOUNT, "group names like sudo", (), prefix),
        shell=_absolute(data, "shell", prefix, DEFAULT_SHELL),
        ssh_authorized_keys=tuple(key.strip() for key in keys),
    )


def _absolute(data: dict[Any, Any], key: str, where: str, default: str | None = None) -> str:
    value = _string(data, key, where, default)
    if value is None:
        raise BuildError(
            f"{where}{key} is required (an absolute path in the image, like /etc/motd)"
        )
    path = PurePosixPath(value)
    if not path.is_absolute() or ".." in path.parts or path == PurePosixPath("/"):
        raise BuildError(f"{where}{key} must be an absolute path in the image, got {value!r}")
    if any(ch in value for ch in "\n\0"):
        raise BuildError(f"{where}{key} must not contain newlines, got {value!r}")
    return str(path)


def _file(item: object, where: str, recipe_dir: Path) -> FileCopy:
    data = _mapping(item, where, FILE_FIELDS)
    prefix = f"{where}."
    mode = data.get("mode", "0644")
    if not isinstance(mode, str) or not _MODE.match(mode):
        raise BuildError(
            f'{prefix}mode must be a quoted octal string like "0644", got {_describe(mode)}'
        )
    owner = _string(data, "owner", prefix, "root:root") or "root:root"
    if not all(_ACCOUNT.match(part) for part in owner.split(":", 1)):
        raise BuildError(f"{prefix}owner must be 'user' or 'user:group', got {owner!r}")
    return FileCopy(
        src=_source(data, prefix, recipe_dir),
        src_in_archive=str(data["src"]),
        dest=_absolute(data, "dest", prefix),
        mode=mode.zfill(4),
        owner=owner,
        template=_boolean(data, "template", default=True, where=prefix),
    )


def _source(data: dict[Any, Any], where: str, recipe_dir: Path) -> Path:
    value = _string(data, "src", where, None)
    if not value:
        raise BuildError(f"{where}src is required (a path inside the recipe archive)")
    relative = PurePosixPath(value)
    if relative.is_absolute() or ".." in relative.parts:
        raise BuildError(
            f"{where}src must be a relative path inside the recipe archive, got {value!r}"
        )
    root = recipe_dir.resolve()
    source = (root / relative).resolve()
    if not source.is_relative_to(root):
        raise BuildError(f"{where}src {value!r} points outside the recipe archive")
    if not source.is_file():
        raise BuildError(f"{where}src {value!r} is not a file in the recipe archive")
    return source


def _disk(item: object, kernel: bool) -> Disk:
    data = _mapping({} if item is None else item, "disk", DISK_FIELDS)
    if not kernel:
        raise BuildError(
            "disk needs kernel: true (the disk boots the image's kernel and initrd); "
            "add 'kernel: true' to recipe.yaml or remove 'disk'"
        )
    formats = _strings(data, "formats", "a disk format", "disk.") or ("qcow2",)
    for index, name in enumerate(formats):
        if name not in DISK_FORMATS:
            raise BuildError(
                f"disk.formats[{index}] must be one of {', '.join(DISK_FORMATS)}; got {name!r}"
            )
    if len(set(formats)) != len(formats):
        raise BuildError(f"disk.formats lists a format twice: {', '.join(formats)}")
    return Disk(formats=formats, size=_disk_size(data.get("size")))


def _disk_size(value: object) -> int | None:
    """``2G``, ``512M``, ``1536MiB``, ``1T`` (binary units) to bytes, rounded up to MiB."""
    if value is None:
        return None
    match = _SIZE.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise BuildError(
            "disk.size must be a size with a unit (K, M, G or T, binary), like 2G or 512M; "
            f"got {_describe(value)}"
        )
    size = int(match.group(1)) * _SIZE_UNITS[match.group(2)]
    size = -(-size // (1 << 20)) * (1 << 20)
    if not DISK_MIN_SIZE <= size <= DISK_MAX_SIZE:
        raise BuildError(f"disk.size must be between 256M and 16T, got {value!r}")
    return size
