"""The ``kiln-debian`` recipe: parsing, validation and templating of recipe.yaml.

Pure python (no subprocesses). ``builders/backends/debian.py`` runs the tools; everything that
can be checked before a build starts is checked here, so mistakes fail fast with a message
that names the field and says what is allowed. The format is documented in docs/recipes.md.
The package mirror is chosen in debian_mirror.py, the customize script made in debian_script.py;
the extra repositories (``repositories:``) are parsed in debian_repos.py.
"""

from __future__ import annotations

import dataclasses
import re
import stat
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from builders.backends import recipe_fields as fields
from builders.backends.base import BuildError
from builders.backends.debian_repos import COMPONENT, SUITE, Repository, parse_repositories

RECIPE_FILE = fields.RECIPE_FILE
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
    "repositories",
    "packages",
    "kernel",
    "hostname",
    "groups",
    "users",
    "files",
    "customize",
    "squashfs_compression",
    "disk",
)
USER_FIELDS = ("name", "uid", "groups", "shell", "ssh_authorized_keys")
FILE_FIELDS = ("src", "dest", "mode", "owner", "template")
DISK_FIELDS = ("formats", "size", "min_size")
DISK_FORMATS = ("qcow2", "raw", "vmdk")
DISK_MIN_SIZE = 256 << 20
DISK_MAX_SIZE = 16 << 40
_SIZE_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

_TEMPLATE_KEY = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_SUITE = SUITE
_COMPONENT = COMPONENT
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
    min_size: int | None = None  # with size None: at least this many bytes (whole MiB)


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
    repositories: tuple[Repository, ...] = ()  # extra apt repositories (debian_repos.py)
    groups: tuple[str, ...] = ()  # groups made (groupadd --system) before the users


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
    return parse_recipe(_templated_text(recipe_dir, template), recipe_dir)


def recipe_document(recipe_dir: Path, template: Mapping[str, str]) -> dict[str, Any]:
    """recipe.yaml after templating, as the mapping YAML gives (for the build plan)."""
    return _document(_templated_text(recipe_dir, template))


def _templated_text(recipe_dir: Path, template: Mapping[str, str]) -> str:
    path = recipe_dir / RECIPE_FILE
    if not path.is_file():
        raise BuildError(f"the recipe archive has no {RECIPE_FILE} at its top level")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BuildError(f"{RECIPE_FILE} is not UTF-8 text") from None
    return render_template(text, template, RECIPE_FILE)


def _document(text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BuildError(f"{RECIPE_FILE} is not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise BuildError(f"{RECIPE_FILE} must be a mapping of fields (suite: ..., packages: ...)")
    return data


def parse_recipe(text: str, recipe_dir: Path) -> Recipe:
    """Validate already-templated recipe.yaml text; file paths are checked against recipe_dir."""
    data = _document(text)
    fields.reject_unknown(data, FIELDS, RECIPE_FILE)
    kernel = fields.boolean(data, "kernel", default=False)
    suite = fields.matching(
        data, "suite", _SUITE, "a Debian suite name like bookworm", required=True
    )
    groups = fields.matching_list(data, "groups", _ACCOUNT, "group names like wheel", ())
    if len(set(groups)) != len(groups):
        twice = next(name for name in groups if groups.count(name) > 1)
        raise BuildError(f"groups lists {twice!r} twice")
    return Recipe(
        suite=suite,
        variant=fields.choice(data, "variant", VARIANTS, "minbase"),
        mirror=_mirror(data.get("mirror")),
        components=fields.matching_list(data, "components", _COMPONENT, "like main", ("main",)),
        packages=fields.matching_list(data, "packages", _PACKAGE, "Debian package names", ()),
        kernel=kernel,
        hostname=fields.matching(data, "hostname", _HOSTNAME, "a host name", DEFAULT_HOSTNAME),
        users=tuple(
            _user(item, f"users[{i}]") for i, item in enumerate(fields.sequence(data, "users"))
        ),
        files=tuple(
            _file(item, f"files[{i}]", recipe_dir)
            for i, item in enumerate(fields.sequence(data, "files"))
        ),
        customize=fields.strings(data, "customize", "shell commands"),
        squashfs_compression=fields.choice(data, "squashfs_compression", COMPRESSIONS, "zstd"),
        disk=_disk(data.get("disk"), kernel) if "disk" in data else None,
        repositories=parse_repositories(data, suite),
        groups=groups,
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


def _mirror(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.match(r"^https?://[^\s'\"]+$", value):
        raise BuildError(f"mirror must be an http:// or https:// URL, got {value!r}")
    return value


def _user(item: object, where: str) -> User:
    data = fields.mapping(item, where, USER_FIELDS)
    prefix = f"{where}."
    account = "a lower-case account name like kiln"
    uid = data.get("uid")
    if uid is not None and (isinstance(uid, bool) or not isinstance(uid, int) or uid < 0):
        raise BuildError(f"{prefix}uid must be a non-negative integer, got {fields.describe(uid)}")
    keys = fields.strings(data, "ssh_authorized_keys", "one public key line", prefix)
    for index, key in enumerate(keys):
        if "\n" in key.strip() or "\0" in key:
            raise BuildError(f"{prefix}ssh_authorized_keys[{index}] must be a single line")
    return User(
        name=fields.matching(data, "name", _ACCOUNT, account, required=True, where=prefix),
        uid=uid,
        groups=fields.matching_list(data, "groups", _ACCOUNT, "group names like sudo", (), prefix),
        shell=_absolute(data, "shell", prefix, DEFAULT_SHELL),
        ssh_authorized_keys=tuple(key.strip() for key in keys),
    )


def _absolute(data: dict[Any, Any], key: str, where: str, default: str | None = None) -> str:
    value = fields.string(data, key, where, default)
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
    data = fields.mapping(item, where, FILE_FIELDS)
    prefix = f"{where}."
    mode = data.get("mode", "0644")
    if not isinstance(mode, str) or not _MODE.match(mode):
        raise BuildError(
            f'{prefix}mode must be a quoted octal string like "0644", got {fields.describe(mode)}'
        )
    owner = fields.string(data, "owner", prefix, "root:root") or "root:root"
    if not all(_ACCOUNT.match(part) for part in owner.split(":", 1)):
        raise BuildError(f"{prefix}owner must be 'user' or 'user:group', got {owner!r}")
    return FileCopy(
        src=_source(data, prefix, recipe_dir),
        src_in_archive=str(data["src"]),
        dest=_absolute(data, "dest", prefix),
        mode=mode.zfill(4),
        owner=owner,
        template=fields.boolean(data, "template", default=True, where=prefix),
    )


def _source(data: dict[Any, Any], where: str, recipe_dir: Path) -> Path:
    value = fields.string(data, "src", where, None)
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
    data = fields.mapping({} if item is None else item, "disk", DISK_FIELDS)
    if not kernel:
        raise BuildError(
            "disk needs kernel: true (the disk boots the image's kernel and initrd); "
            "add 'kernel: true' to recipe.yaml or remove 'disk'"
        )
    formats = fields.strings(data, "formats", "a disk format", "disk.") or ("qcow2",)
    for index, name in enumerate(formats):
        if name not in DISK_FORMATS:
            raise BuildError(
                f"disk.formats[{index}] must be one of {', '.join(DISK_FORMATS)}; got {name!r}"
            )
    if len(set(formats)) != len(formats):
        raise BuildError(f"disk.formats lists a format twice: {', '.join(formats)}")
    size, min_size = _disk_size(data, "size"), _disk_size(data, "min_size")
    if size is not None and min_size is not None:
        raise BuildError(
            "disk.size and disk.min_size exclude each other: size is the exact size of the "
            "disk, min_size the least (more if the content needs it); set one of them"
        )
    return Disk(formats=formats, size=size, min_size=min_size)


def _disk_size(data: dict[Any, Any], key: str) -> int | None:
    """``2G``, ``512M``, ``1536MiB``, ``1T`` (binary units) to bytes, rounded up to MiB."""
    value = data.get(key)
    if value is None:
        return None
    match = _SIZE.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise BuildError(
            f"disk.{key} must be a size with a unit (K, M, G or T, binary), like 2G or 512M; "
            f"got {fields.describe(value)}"
        )
    size = int(match.group(1)) * _SIZE_UNITS[match.group(2)]
    size = -(-size // (1 << 20)) * (1 << 20)
    if not DISK_MIN_SIZE <= size <= DISK_MAX_SIZE:
        raise BuildError(f"disk.{key} must be between 256M and 16T, got {value!r}")
    return size
