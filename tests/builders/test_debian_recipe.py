"""Fast tests of the kiln-debian recipe format (no mmdebstrap, no network beyond localhost)."""

from __future__ import annotations

import http.server
import json
import platform
import shlex
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from builders.backends import available_backends, backend_for
from builders.backends import debian_recipe as recipes
from builders.backends.base import ROOTFS_SQUASHFS, BuildContext, BuildError
from builders.backends.debian import DebianBackend
from builders.backends.noop import NoopBackend

S = "suite: bookworm\n"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "recipes"


def write_recipe(directory: Path, text: str, files: dict[str, bytes] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "recipe.yaml").write_text(text)
    for name, data in (files or {}).items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)
    return directory


def load(tmp_path: Path, text: str, template: dict[str, str] | None = None) -> recipes.Recipe:
    return recipes.load_recipe(write_recipe(tmp_path / "recipe", text), template or {})


def error_of(tmp_path: Path, text: str, template: dict[str, str] | None = None) -> str:
    with pytest.raises(BuildError) as caught:
        load(tmp_path, text, template)
    return str(caught.value)


def context(tmp_path: Path, recipe_dir: Path, **overrides: object) -> BuildContext:
    fields: dict[str, object] = {
        "job_id": "job-1",
        "arch": "x86_64",
        "recipe_type": "kiln-debian",
        "recipe_dir": recipe_dir,
        "work_dir": tmp_path / "work",
        "out_dir": tmp_path / "out",
        "template": {},
        "source_date_epoch": 1700000000,
        "image_root_archive_name": "rootfs",
        "log": lambda line: None,
    }
    fields.update(overrides)
    return BuildContext(**fields)  # type: ignore[arg-type]


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


# --- staging files and the customize script ----------------------------------------------------


def test_stage_files_templates_text_only(tmp_path: Path) -> None:
    binary = b"\x00\x01{{MOTD}}"
    recipe_dir = write_recipe(
        tmp_path / "recipe",
        """suite: bookworm
files:
  - {src: motd, dest: /etc/motd}
  - {src: blob, dest: /blob}
  - {src: raw, dest: /raw, template: false}
""",
        {"motd": b"Hi {{MOTD}}!\n", "blob": binary, "raw": b"{{MOTD}}"},
    )
    recipe = recipes.load_recipe(recipe_dir, {"MOTD": "there"})
    staged = recipes.stage_files(recipe, {"MOTD": "there"}, tmp_path / "stage")
    assert [path.read_bytes() for path in staged] == [b"Hi there!\n", binary, b"{{MOTD}}"]


def test_stage_files_names_missing_key_and_file(tmp_path: Path) -> None:
    recipe_dir = write_recipe(
        tmp_path / "recipe",
        "suite: bookworm\nfiles: [{src: files/motd, dest: /etc/motd}]\n",
        {"files/motd": b"{{MOTD}}"},
    )
    recipe = recipes.load_recipe(recipe_dir, {})
    with pytest.raises(BuildError, match=r"files\[0\] \(files/motd\) uses template key\(s\) MOTD"):
        recipes.stage_files(recipe, {}, tmp_path / "stage")


def test_customize_script_is_valid_shell_and_quotes_user_text(tmp_path: Path) -> None:
    recipe_dir = write_recipe(
        tmp_path / "recipe",
        """suite: bookworm
users: [{name: kiln, groups: [sudo], ssh_authorized_keys: ["ssh-ed25519 AAAA it's $(me)"]}]
files: [{src: f, dest: "/etc/x $(touch /tmp/pwned)"}]
customize: ["echo 'a' > /b; false"]
""",
        {"f": b"x"},
    )
    recipe = recipes.load_recipe(recipe_dir, {})
    staged = recipes.stage_files(recipe, {}, tmp_path / "stage")
    script = recipes.customize_script(recipe, staged)
    subprocess.run(["sh", "-n"], input=script.encode(), check=True)
    put_line = next(line for line in script.splitlines() if line.startswith("put_file '/etc/x"))
    assert shlex.split(put_line.removesuffix(" \\"))[1] == "/etc/x $(touch /tmp/pwned)"
    assert "useradd --create-home --shell /bin/bash --groups sudo kiln" in script
    assert "'ssh-ed25519 AAAA it'\"'\"'s $(me)'" in script
    assert "rm -f /etc/ssh/ssh_host_*_key" in script
    assert recipes.SSH_UNIT_PATH in script


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


# --- mirrors -------------------------------------------------------------------------------------


def test_mirror_resolution_order(tmp_path: Path) -> None:
    etc_apt = tmp_path / "apt"
    (etc_apt / "sources.list.d").mkdir(parents=True)
    (etc_apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb deb-src\nURIs: http://host.example/debian\nSuites: bookworm\n"
    )
    without_mirror = load(tmp_path, "suite: bookworm\n")
    with_mirror = recipes.parse_recipe("suite: bookworm\nmirror: http://r.example/d/\n", tmp_path)
    env = {recipes.MIRROR_ENV: "http://env.example/debian"}
    assert recipes.resolve_mirror(with_mirror, env, etc_apt) == "http://r.example/d"
    assert recipes.resolve_mirror(without_mirror, env, etc_apt) == "http://env.example/debian"
    assert recipes.resolve_mirror(without_mirror, {}, etc_apt) == "http://host.example/debian"
    assert recipes.resolve_mirror(without_mirror, {}, tmp_path / "none") == recipes.DEFAULT_MIRROR


def test_host_mirror_from_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\n"
    )
    assert recipes.host_apt_mirror(tmp_path) == "http://one.example/debian"


class _ReleaseHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path == "/debian/dists/bookworm/Release":
            body = b"Suite: stable\nArchitectures: amd64 arm64\nComponents: main contrib\n"
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def release_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ReleaseHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/debian"
    server.shutdown()
    server.server_close()


def _wait(tmp_path: Path, text: str, arch: str = "x86_64", wait: float = 5.0) -> None:
    recipe_dir = write_recipe(tmp_path / "recipe", text)
    DebianBackend(repo_wait_seconds=wait).wait_for_repos(context(tmp_path, recipe_dir, arch=arch))


def test_wait_for_repos_ok(tmp_path: Path, release_server: str) -> None:
    _wait(tmp_path, f"suite: bookworm\nmirror: {release_server}\n")


def test_wait_for_repos_unknown_suite_fails_at_once(tmp_path: Path, release_server: str) -> None:
    with pytest.raises(BuildError, match="suite 'bookwurm' does not exist on package mirror"):
        _wait(tmp_path, f"suite: bookwurm\nmirror: {release_server}\n", wait=60)


def test_wait_for_repos_checks_components(tmp_path: Path, release_server: str) -> None:
    with pytest.raises(BuildError, match="component\\(s\\) non-free not in suite bookworm"):
        _wait(tmp_path, f"suite: bookworm\nmirror: {release_server}\ncomponents: [non-free]\n")


def test_wait_for_repos_gives_up_on_a_dead_mirror(tmp_path: Path, release_server: str) -> None:
    dead = release_server.rsplit(":", 1)[0] + ":9/debian"  # discard port: nothing listens
    with pytest.raises(BuildError, match=f"package mirror {dead} did not answer for suite"):
        _wait(tmp_path, f"suite: bookworm\nmirror: {dead}\n", wait=1)


# --- backend registry, availability and the noop backend ---------------------------------------


def test_backend_registry() -> None:
    assert [type(b) for b in available_backends()] == [DebianBackend, NoopBackend]
    assert isinstance(backend_for("kiln-debian"), DebianBackend)
    assert isinstance(backend_for("kiln-noop"), NoopBackend)
    assert backend_for("kiwi-ng") is None


def test_unavailable_for_foreign_arch_without_binfmt(tmp_path: Path) -> None:
    backend = DebianBackend(binfmt_dir=tmp_path)
    assert "unsupported arch" in (backend.unavailable_reason("s390x") or "")
    native = platform.machine()
    if backend.unavailable_reason(native) is not None:
        pytest.skip("this host cannot build natively (not root, or tools missing)")
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
