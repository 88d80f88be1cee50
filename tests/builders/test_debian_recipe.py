"""Fast tests of the kiln-debian recipe format and the backend registry (no mmdebstrap)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest

from builders.backends import available_backends, backend_for
from builders.backends import debian_recipe as recipes
from builders.backends.base import ROOTFS_SQUASHFS, BuildError
from builders.backends.debian import DebianBackend
from builders.backends.kiwi import KiwiBackend
from builders.backends.noop import NoopBackend
from tests.builders.helpers import context, load, write_recipe

S = "suite: bookworm\n"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "recipes"


def error_of(tmp_path: Path, text: str, template: dict[str, str] | None = None) -> str:
    with pytest.raises(BuildError) as caught:
        load(tmp_path, text, template)
    return str(caught.value)


# --- parsing and defaults -------------------------------------------------------------------


def test_minimal_recipe_gets_defaults(tmp_path: Path) -> None:
    recipe = load(tmp_path, "suite: bookworm\n")
    assert recipe.suite == "bookworm"
    assert recipe.variant == "minbase"
    assert recipe.mirror is None
    assert recipe.components == ("main",)
    assert recipe.packages == ()
    assert recipe.kernel is False
    assert recipe.hostname == "localhost"
    assert (recipe.users, recipe.files, recipe.customize) == ((), (), ())
    assert recipe.squashfs_compression == "zstd"


def test_full_recipe(tmp_path: Path) -> None:
    recipe_dir = write_recipe(
        tmp_path / "recipe",
        """
suite: bookworm
variant: standard
mirror: http://mirror.example/debian/
components: [main, contrib, non-free-firmware]
packages: [openssh-server, "libc6:amd64", "vim=2:9.0.1378-2", bash/bookworm]
kernel: true
hostname: node-1.example.com
users:
  - name: kiln
    uid: 1500
    groups: [sudo, adm]
    shell: /bin/sh
    ssh_authorized_keys: ["ssh-ed25519 AAAAkey user@host"]
files:
  - src: files/motd
    dest: /etc/motd
    mode: "0600"
    owner: kiln:kiln
    template: false
customize:
  - echo hi > /etc/greeting
squashfs_compression: xz
""",
        {"files/motd": b"hello\n"},
    )
    recipe = recipes.load_recipe(recipe_dir, {})
    assert recipe.mirror == "http://mirror.example/debian/"
    assert recipe.packages[1:] == ("libc6:amd64", "vim=2:9.0.1378-2", "bash/bookworm")
    assert recipe.users[0] == recipes.User(
        "kiln", 1500, ("sudo", "adm"), "/bin/sh", ("ssh-ed25519 AAAAkey user@host",)
    )
    assert recipe.files[0].src == (recipe_dir / "files/motd").resolve()
    assert (recipe.files[0].dest, recipe.files[0].mode, recipe.files[0].owner) == (
        "/etc/motd",
        "0600",
        "kiln:kiln",
    )
    assert recipe.files[0].template is False
    assert recipe.squashfs_compression == "xz"


@pytest.mark.parametrize("example", ["minimal", "ssh-server"])
def test_examples_parse(example: str) -> None:
    meta = json.loads((EXAMPLES / example / "recipe.json").read_text())
    assert meta["recipe_type"] == "kiln-debian"
    template = {item["key"]: item["value"] for item in meta.get("template_dictionary", [])}
    recipe = recipes.load_recipe(EXAMPLES / example, template)
    assert recipe.suite == "bookworm"
    if example == "ssh-server":
        assert recipe.kernel and "openssh-server" in recipe.packages
        assert recipe.users[0].name == "kiln" and recipe.users[0].ssh_authorized_keys


# --- errors a user can act on -----------------------------------------------------------------


def test_missing_recipe_file(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="no recipe.yaml"):
        recipes.load_recipe(tmp_path, {})


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, "suite: bookworm\npackages: [a, b\nkernel: true\n")
    assert "not valid YAML" in message and "line" in message


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert "must be a mapping" in error_of(tmp_path, "- suite: bookworm\n")


def test_unknown_field_suggests_the_right_one(tmp_path: Path) -> None:
    message = error_of(tmp_path, "suite: bookworm\npakages: [vim]\n")
    assert "unknown field 'pakages'" in message
    assert "did you mean 'packages'" in message
    assert "allowed fields:" in message


def test_unknown_field_in_user(tmp_path: Path) -> None:
    message = error_of(tmp_path, "suite: bookworm\nusers: [{name: kiln, password: x}]\n")
    assert "unknown field 'password' in users[0]" in message


def test_suite_is_required(tmp_path: Path) -> None:
    assert "must set suite" in error_of(tmp_path, "packages: [vim]\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("suite: 12\n", "suite must be a string, got int 12"),
        (S + "packages: vim\n", "packages must be a list"),
        (S + "packages: [vim, 3]\n", "packages[1] must be a non-empty string"),
        (S + "packages: ['vim,curl']\n", "packages[0] 'vim,curl' is not valid"),
        (S + "kernel: 'yes'\n", "kernel must be true or false"),
        (S + "variant: tiny\n", "variant must be one of essential, apt"),
        (S + "mirror: ftp://x/debian\n", "mirror must be an http:// or https://"),
        (S + "hostname: 'bad_host!'\n", "hostname must be a host name"),
        (S + "components: [Main]\n", "components[0] 'Main' is not valid"),
        (S + "users: [kiln]\n", "users[0] must be a mapping"),
        (S + "users: [{shell: /bin/sh}]\n", "must set users[0].name"),
        (S + "users: [{name: Kiln}]\n", "users[0].name must be a lower-case"),
        (S + "users: [{name: k, uid: '7'}]\n", "users[0].uid must be a non-negative"),
        (S + "users: [{name: k, shell: bash}]\n", "users[0].shell must be an absolute"),
        (S + "files: [{src: f, dest: /f, mode: 644}]\n", 'quoted octal string like "0644"'),
        (S + "customize: [echo ok, '']\n", "customize[1] must be a non-empty string"),
        (S + "squashfs_compression: bz2\n", "squashfs_compression must be one of"),
    ],
)
def test_wrong_types_and_values(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error_of(tmp_path, text)


def test_missing_template_key_is_named(tmp_path: Path) -> None:
    message = error_of(tmp_path, "suite: '{{SUITE}}'\nhostname: '{{ HOST }}'\n", {"SUITE": "x"})
    assert "recipe.yaml uses template key(s) HOST" in message
    assert "defined keys: SUITE" in message


def test_template_substitution(tmp_path: Path) -> None:
    recipe = load(
        tmp_path, "suite: '{{SUITE}}'\nhostname: '{{ HOST }}'\n", {"SUITE": "trixie", "HOST": "n1"}
    )
    assert (recipe.suite, recipe.hostname) == ("trixie", "n1")


def test_non_identifier_braces_are_left_alone(tmp_path: Path) -> None:
    recipe = load(tmp_path, "suite: bookworm\ncustomize: [\"docker ps --format '{{.Names}}'\"]\n")
    assert recipe.customize == ("docker ps --format '{{.Names}}'",)


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ("../outside", "must be a relative path inside the recipe archive"),
        ("files/../../outside", "must be a relative path inside the recipe archive"),
        ("/etc/passwd", "must be a relative path inside the recipe archive"),
        ("link-out", "points outside the recipe archive"),
        ("missing", "is not a file in the recipe archive"),
        ("files", "is not a file in the recipe archive"),
    ],
)
def test_file_src_must_stay_inside_the_archive(tmp_path: Path, src: str, expected: str) -> None:
    (tmp_path / "outside").write_text("secret")
    recipe_dir = write_recipe(
        tmp_path / "recipe", f"suite: bookworm\nfiles: [{{src: '{src}', dest: /x}}]\n"
    )
    (recipe_dir / "files").mkdir()
    (recipe_dir / "link-out").symlink_to(tmp_path / "outside")
    with pytest.raises(BuildError, match=expected):
        recipes.load_recipe(recipe_dir, {})


@pytest.mark.parametrize("dest", ["etc/motd", "/etc/../../motd", "/", "''"])
def test_file_dest_must_be_absolute(tmp_path: Path, dest: str) -> None:
    recipe_dir = write_recipe(
        tmp_path / "recipe", f"suite: bookworm\nfiles: [{{src: f, dest: {dest}}}]\n", {"f": b""}
    )
    with pytest.raises(BuildError, match=r"files\[0\].dest"):
        recipes.load_recipe(recipe_dir, {})


# --- arch and kernel ---------------------------------------------------------------------------


def test_kernel_packages_follow_the_arch() -> None:
    assert recipes.kernel_packages(recipes.debian_arch("x86_64"))[0] == "linux-image-amd64"
    assert recipes.kernel_packages(recipes.debian_arch("aarch64"))[0] == "linux-image-arm64"
    with pytest.raises(BuildError, match="unsupported arch 'ppc64le'"):
        recipes.debian_arch("ppc64le")


def test_find_kernel_and_initrd(tmp_path: Path) -> None:
    boot = tmp_path / "boot"
    boot.mkdir()
    assert recipes.find_kernel_and_initrd(boot, kernel_required=False) is None
    with pytest.raises(BuildError, match="kernel: true but the image has no"):
        recipes.find_kernel_and_initrd(boot, kernel_required=True)
    (boot / "vmlinuz-6.1.0-1-amd64").write_bytes(b"k")
    with pytest.raises(BuildError, match="no /boot/initrd.img-6.1.0-1-amd64"):
        recipes.find_kernel_and_initrd(boot, kernel_required=True)
    (boot / "initrd.img-6.1.0-1-amd64").symlink_to("/etc/shadow")  # must not be followed
    with pytest.raises(BuildError, match="no /boot/initrd.img"):
        recipes.find_kernel_and_initrd(boot, kernel_required=True)
    (boot / "initrd.img-6.1.0-1-amd64").unlink()
    (boot / "initrd.img-6.1.0-1-amd64").write_bytes(b"i")
    assert recipes.find_kernel_and_initrd(boot, kernel_required=False) == (
        boot / "vmlinuz-6.1.0-1-amd64",
        boot / "initrd.img-6.1.0-1-amd64",
    )


# --- backend registry, availability and the noop backend ---------------------------------------


def test_backend_registry() -> None:
    assert [type(b) for b in available_backends()] == [DebianBackend, KiwiBackend, NoopBackend]
    assert isinstance(backend_for("kiln-debian"), DebianBackend)
    assert isinstance(backend_for("kiwi-ng"), KiwiBackend)
    assert isinstance(backend_for("kiln-noop"), NoopBackend)
    assert backend_for("packer") is None


def test_unavailable_for_foreign_arch_without_binfmt(tmp_path: Path) -> None:
    backend = DebianBackend(binfmt_dir=tmp_path)
    assert "unsupported arch" in (backend.unavailable_reason("s390x") or "")
    native = platform.machine()
    if (reason := backend.unavailable_reason(native)) is not None:
        pytest.skip(f"this host cannot build natively: {reason}")
    foreign = "aarch64" if native == "x86_64" else "x86_64"
    assert f"qemu-{foreign}" in (backend.unavailable_reason(foreign) or "")
    (tmp_path / f"qemu-{foreign}").write_text("enabled\n")
    assert backend.unavailable_reason(foreign) is None


def test_noop_build_is_deterministic(tmp_path: Path) -> None:
    recipe_dir = write_recipe(tmp_path / "recipe", "hello: world\n")
    first = NoopBackend().build(context(tmp_path / "a", recipe_dir, recipe_type="kiln-noop"))
    second = NoopBackend().build(
        context(tmp_path / "b", recipe_dir, recipe_type="kiln-noop", job_id="job-2")
    )
    assert [a.type for a in first] == [ROOTFS_SQUASHFS]
    assert first[0].path.name == "rootfs.squashfs"
    assert first[0].path.read_bytes() == second[0].path.read_bytes()
    assert first[0].path.read_bytes().startswith(b"hello: world\n")


def test_noop_fail_and_stop(tmp_path: Path) -> None:
    failing = write_recipe(tmp_path / "failing", 'fail: "no disk space"\n')
    with pytest.raises(BuildError, match="^no disk space$"):
        NoopBackend().build(context(tmp_path, failing))
    sleeping = write_recipe(tmp_path / "sleeping", "sleep: 30\n")
    with pytest.raises(BuildError, match="build stopped: host is shutting down"):
        NoopBackend().build(context(tmp_path, sleeping, should_stop=lambda: True))
    bad = write_recipe(tmp_path / "bad", "sleep: soon\n")
    with pytest.raises(BuildError, match="sleep must be a number of seconds"):
        NoopBackend().build(context(tmp_path, bad))


# --- disk -------------------------------------------------------------------------------------

K = "suite: bookworm\nkernel: true\n"


def test_no_disk_by_default(tmp_path: Path) -> None:
    assert load(tmp_path, K).disk is None


def test_disk_formats_and_size(tmp_path: Path) -> None:
    recipe = load(tmp_path, K + "disk:\n  formats: [qcow2, raw, vmdk]\n  size: 2G\n")
    assert recipe.disk == recipes.Disk(formats=("qcow2", "raw", "vmdk"), size=2 << 30)


def test_disk_defaults_to_qcow2_sized_by_content(tmp_path: Path) -> None:
    assert load(tmp_path, K + "disk: {}\n").disk == recipes.Disk(formats=("qcow2",), size=None)
    assert load(tmp_path, K + "disk:\n").disk == recipes.Disk(formats=("qcow2",), size=None)


@pytest.mark.parametrize(
    ("size", "expected"),
    [("512M", 512 << 20), ("1536MiB", 1536 << 20), ("1T", 1 << 40), ("300000K", 293 << 20)],
)
def test_disk_sizes(tmp_path: Path, size: str, expected: int) -> None:
    recipe = load(tmp_path, K + f"disk: {{size: {size}}}\n")
    assert recipe.disk is not None and recipe.disk.size == expected


def test_disk_needs_a_kernel(tmp_path: Path) -> None:
    message = error_of(tmp_path, S + "disk: {formats: [qcow2]}\n")
    assert message.startswith("disk needs kernel: true")


@pytest.mark.parametrize(
    ("disk", "message"),
    [
        ("{formats: [qcow]}", "disk.formats[0] must be one of qcow2, raw, vmdk; got 'qcow'"),
        ("{formats: [raw, raw]}", "disk.formats lists a format twice: raw, raw"),
        ("{formats: qcow2}", "disk.formats must be a list"),
        ("{size: 2}", "disk.size must be a size with a unit (K, M, G or T, binary), like 2G"),
        ("{size: 2 GB}", "disk.size must be a size with a unit"),
        ("{size: 100M}", "disk.size must be between 256M and 16T, got '100M'"),
        ("{size: 20T}", "disk.size must be between 256M and 16T"),
        ("{sise: 2G}", "unknown field 'sise' in disk (did you mean 'size'?)"),
        ("qcow2", "disk must be a mapping (formats, size, min_size)"),
    ],
)
def test_bad_disk_names_the_problem(tmp_path: Path, disk: str, message: str) -> None:
    assert message in error_of(tmp_path, K + f"disk: {disk}\n")


def test_disk_installs_the_boot_loader_package(tmp_path: Path) -> None:
    from builders.backends.debian import _mmdebstrap_command

    recipe = load(tmp_path, K + "disk: {}\n")
    command = _mmdebstrap_command(recipe, "amd64", "http://m/debian", tmp_path, tmp_path / "s")
    assert "--include=linux-image-amd64,initramfs-tools,systemd-boot-efi" in command


def test_disk_example_parses() -> None:
    meta = json.loads((EXAMPLES / "disk-minimal" / "recipe.json").read_text())
    assert meta["recipe_type"] == "kiln-debian"
    recipe = recipes.load_recipe(EXAMPLES / "disk-minimal", {})
    assert recipe.kernel and "systemd-sysv" in recipe.packages
    assert recipe.disk == recipes.Disk(formats=("qcow2",), size=None)
