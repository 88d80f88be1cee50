"""The ``kiln-debian`` recipe: parsing, validation, templating and the customize script.

Pure python (no subprocesses). ``builders/backends/debian.py`` runs the tools; everything that
can be checked before a build starts is checked here, so mistakes fail fast with a message
that names the field and says what is allowed. The format is documented in docs/recipes.md.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import shlex
import stat
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from builders.backends.base import BuildError

RECIPE_FILE = "recipe.yaml"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
MIRROR_ENV = "KILN_DEBIAN_MIRROR"
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
)
USER_FIELDS = ("name", "uid", "groups", "shell", "ssh_authorized_keys")
FILE_FIELDS = ("src", "dest", "mode", "owner", "template")

_TEMPLATE_KEY = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_SUITE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
_COMPONENT = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# name, optional :arch, optional =version or /release (what apt and --include accept)
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?([=/][A-Za-z0-9.+:~-]+)?$")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
_ACCOUNT = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_MODE = re.compile(r"^0?[0-7]{3,4}$")


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
    return Recipe(
        suite=_matching(data, "suite", _SUITE, "a Debian suite name like bookworm", required=True),
        variant=_choice(data, "variant", VARIANTS, "minbase"),
        mirror=_mirror(data.get("mirror")),
        components=_matching_list(data, "components", _COMPONENT, "like main", ("main",)),
        packages=_matching_list(data, "packages", _PACKAGE, "Debian package names", ()),
        kernel=_boolean(data, "kernel", default=False),
        hostname=_matching(data, "hostname", _HOSTNAME, "a host name", DEFAULT_HOSTNAME),
        users=tuple(_user(item, f"users[{i}]") for i, item in enumerate(_list(data, "users"))),
        files=tuple(
            _file(item, f"files[{i}]", recipe_dir) for i, item in enumerate(_list(data, "files"))
        ),
        customize=_strings(data, "customize", "shell commands"),
        squashfs_compression=_choice(data, "squashfs_compression", COMPRESSIONS, "zstd"),
    )


def resolve_mirror(recipe: Recipe, environ: Mapping[str, str], etc_apt: Path) -> str:
    """The recipe's mirror, else $KILN_DEBIAN_MIRROR, else the host's apt mirror, else Debian's."""
    chosen = recipe.mirror or environ.get(MIRROR_ENV) or host_apt_mirror(etc_apt)
    return (chosen or DEFAULT_MIRROR).rstrip("/")


def host_apt_mirror(etc_apt: Path) -> str | None:
    """The first non-security ``deb`` URI in the host's apt sources (both source formats)."""
    candidates = [etc_apt / "sources.list"]
    list_dir = etc_apt / "sources.list.d"
    if list_dir.is_dir():
        candidates += sorted(list_dir.iterdir())
    for path in candidates:
        if path.suffix == ".sources" and path.is_file():
            entries = _deb822_entries(path.read_text(errors="replace"))
        elif path.name.endswith(".list") and path.is_file():
            entries = _one_line_entries(path.read_text(errors="replace"))
        else:
            continue
        for uri, suites in entries:
            if uri.startswith(("http://", "https://")) and not all(
                suite.endswith(("-security", "/updates")) for suite in suites
            ):
                return uri
    return None


def release_mismatch(release: str, recipe: Recipe, debarch: str) -> str | None:
    """Why a suite's Release file (its text) cannot serve the recipe, or None if it can."""
    fields = dict(re.findall(r"^(Architectures|Components): *(.*)$", release, re.MULTILINE))
    arches = fields.get("Architectures", "").split()
    if arches and debarch not in arches:
        return f"suite {recipe.suite} has no {debarch} packages (it has {', '.join(arches)})"
    # Release files may list components as e.g. "updates/main"; compare the last part only.
    known = {component.rsplit("/", 1)[-1] for component in fields.get("Components", "").split()}
    unknown = [component for component in recipe.components if known and component not in known]
    if unknown:
        return (
            f"component(s) {', '.join(unknown)} not in suite {recipe.suite}; "
            f"the mirror offers {', '.join(sorted(known))}"
        )
    return None


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


def stage_files(recipe: Recipe, template: Mapping[str, str], stage_dir: Path) -> list[Path]:
    """Copy (and template) each ``files`` entry into stage_dir; return the staged paths."""
    staged_dir = stage_dir / "files"
    staged_dir.mkdir(parents=True, exist_ok=True)
    staged = []
    for index, file in enumerate(recipe.files):
        data = file.src.read_bytes()
        if file.template and b"\0" not in data:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                pass  # binary: copied as is
            else:
                where = f"files[{index}] ({file.src_in_archive})"
                data = render_template(text, template, where).encode("utf-8")
        target = staged_dir / str(index)
        target.write_bytes(data)
        staged.append(target)
    return staged


def customize_script(recipe: Recipe, staged: list[Path]) -> str:
    """The shell script mmdebstrap runs as a customize hook (``sh script "$1"``, $1 = image root).

    Order: hostname, users, files, customize commands, SSH host key unit, reproducibility
    cleanup. Everything that writes into the image does so through ``chroot`` so symlinks in the
    image resolve inside it, never on the build host.
    """
    parts = [_SCRIPT_HEADER, _hostname_part(recipe.hostname)]
    parts += [_user_part(user, f"users[{i}]") for i, user in enumerate(recipe.users)]
    parts += [_file_part(file, staged[i], f"files[{i}]") for i, file in enumerate(recipe.files)]
    parts += [_customize_part(cmd, f"customize[{i}]") for i, cmd in enumerate(recipe.customize)]
    parts.append(_SSH_HOSTKEYS_PART)
    keep_resolv_conf = any(file.dest == "/etc/resolv.conf" for file in recipe.files)
    parts.append(_cleanup_part(keep_resolv_conf))
    return "\n".join(parts)


# --- customize script pieces -------------------------------------------------------------------

_SCRIPT_HEADER = """\
#!/bin/sh
# Generated by Kiln from recipe.yaml. mmdebstrap runs it as: sh <this file> <image root>
set -eu
umask 022
root="$1"
say() { printf '%s\\n' "I: kiln: $*"; }
fail() { printf '%s\\n' "E: kiln: $*" >&2; exit 1; }
# put_file DEST MODE OWNER < content: replace DEST inside the image (never writes through a link)
put_file() {
    chroot "$root" /bin/sh -ec 'mkdir -p "$(dirname "$1")"; rm -f "$1"; cat > "$1"
        chown "$3" "$1"; chmod "$2" "$1"' put_file "$1" "$2" "$3"
}
"""

_SSH_UNIT = """\
[Unit]
Description=Generate the SSH host keys the image does not ship (Kiln)
Before=ssh.service ssh.socket
ConditionPathExists=/usr/bin/ssh-keygen

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target ssh.service
"""

SSH_UNIT_PATH = "/etc/systemd/system/kiln-ssh-hostkeys.service"

_SSH_HOSTKEYS_PART = f"""\
if chroot "$root" test -e /usr/sbin/sshd; then
    say "sshd found: host keys are generated at boot by {SSH_UNIT_PATH}"
    printf '%s' {shlex.quote(_SSH_UNIT)} | put_file {SSH_UNIT_PATH} 0644 root:root
    for wants in multi-user.target.wants ssh.service.wants; do
        chroot "$root" mkdir -p "/etc/systemd/system/$wants"
        chroot "$root" ln -sfn {SSH_UNIT_PATH} "/etc/systemd/system/$wants/"
    done
fi
"""

_HOSTS_TAIL = (
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
)

_CLEANUP_COMMANDS = (
    "rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub",
    "rm -f /var/cache/ldconfig/aux-cache /var/cache/apt/*.bin",
    "rm -f /var/lib/systemd/random-seed",
    "if [ -d /var/log ]; then find /var/log -type f -exec truncate -s 0 {} +; fi",
)
_DROP_HOST_RESOLV_CONF = (
    "if [ -f /etc/resolv.conf ] && [ ! -L /etc/resolv.conf ]; then rm -f /etc/resolv.conf; fi"
)


def _q(text: str) -> str:
    return shlex.quote(text)


def _hostname_part(hostname: str) -> str:
    hosts = ["127.0.0.1\tlocalhost"]
    if hostname != "localhost":
        hosts.append(f"127.0.1.1\t{hostname}")
    hosts += _HOSTS_TAIL
    return (
        f"say {_q(f'hostname {hostname}')}\n"
        f"printf '%s\\n' {_q(hostname)} | put_file /etc/hostname 0644 root:root\n"
        f"printf '%s\\n' {' '.join(_q(line) for line in hosts)} \\\n"
        "    | put_file /etc/hosts 0644 root:root\n"
    )


def _user_part(user: User, where: str) -> str:
    name = _q(user.name)  # validated, quoting is belt and braces
    groups = _q(",".join(user.groups))
    useradd = ["useradd", "--create-home", "--shell", _q(user.shell)]
    useradd += ["--uid", str(user.uid)] if user.uid is not None else []
    useradd += ["--groups", groups] if user.groups else []
    lines = [
        f"say {_q(f'user {user.name}')}",
        f'if chroot "$root" getent passwd {name} >/dev/null; then',
        f'    chroot "$root" usermod --shell {_q(user.shell)} {name} \\',
        f"        || fail {_q(f'{where}: usermod failed')}",
    ]
    if user.groups:
        lines.append(
            f'    chroot "$root" usermod --append --groups {groups} {name} \\\n'
            f"        || fail {_q(f'{where}: adding groups failed (do they exist in the image?)')}"
        )
    lines += [
        "else",
        f'    chroot "$root" {" ".join(useradd)} {name} \\',
        f"        || fail {_q(f'{where}: useradd failed (do the groups exist in the image?)')}",
        "fi",
    ]
    if user.ssh_authorized_keys:
        keys = " ".join(_q(key) for key in user.ssh_authorized_keys)
        lines += [
            f'home=$(chroot "$root" getent passwd {name} | cut -d: -f6)',
            f"printf '%s\\n' {keys} | put_file \"$home/.ssh/authorized_keys\" 0600 {name}:",
            f'chroot "$root" chown {name}: "$home/.ssh"',
            'chroot "$root" chmod 0700 "$home/.ssh"',
        ]
    return "\n".join(lines) + "\n"


def _file_part(file: FileCopy, staged: Path, where: str) -> str:
    problem = f"{where}: could not write {file.dest} (does owner {file.owner} exist in the image?)"
    return (
        f"say {_q(f'file {file.dest}')}\n"
        f"put_file {_q(file.dest)} {file.mode} {_q(file.owner)} < {_q(str(staged))} \\\n"
        f"    || fail {_q(problem)}\n"
    )


def _customize_part(command: str, where: str) -> str:
    summary = command.strip().splitlines()[0][:100]
    return (
        f"say {_q(f'{where}: {summary}')}\n"
        f'chroot "$root" /bin/sh -ec {_q(command)} \\\n'
        f'    || fail "{where} failed with exit status $?:" {_q(summary)}\n'
    )


def _cleanup_part(keep_resolv_conf: bool) -> str:
    commands = list(_CLEANUP_COMMANDS)
    if not keep_resolv_conf:
        commands.append(_DROP_HOST_RESOLV_CONF)
    return (
        'say "removing SSH host keys, logs and caches that would make images differ"\n'
        f'chroot "$root" /bin/sh -ec {_q(chr(10).join(commands))}\n'
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


def _deb822_entries(text: str) -> list[tuple[str, list[str]]]:
    entries = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith(("#", " ", "\t")):
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
            suites = fields.get("suites", "").split()
            entries += [(uri, suites) for uri in fields.get("uris", "").split()]
    return entries


def _one_line_entries(text: str) -> list[tuple[str, list[str]]]:
    entries = []
    for line in text.splitlines():
        line = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0])
        words = line.split()
        if len(words) >= 3 and words[0] == "deb":
            entries.append((words[1], [words[2]]))
    return entries
