"""Extra apt repositories of a kiln-debian recipe (``repositories:``): parsing, and the apt
source lines and keyrings they become.

Pure python (no subprocesses, no network). Each repository is passed to mmdebstrap as one more
``deb`` line (its key, if any, as ``signed-by=`` a keyring file in the build's staging
directory); the customize script then moves these lines into the image's
``/etc/apt/sources.list.d/kiln-extra.list``, with the keyrings in ``/etc/apt/keyrings/``.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from builders.backends import recipe_fields as fields
from builders.backends.base import BuildError

REPOSITORY_FIELDS = ("url", "suite", "components", "key")
IMAGE_LIST = "/etc/apt/sources.list.d/kiln-extra.list"
IMAGE_KEYRING_DIR = "/etc/apt/keyrings"
URL = re.compile(r"^https?://[^\s'\"\[\]]+$")
SUITE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
COMPONENT = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_KEY_BLOCK = re.compile(
    r"\A\s*-----BEGIN PGP PUBLIC KEY BLOCK-----\r?\n(.*?)"
    r"-----END PGP PUBLIC KEY BLOCK-----\s*\Z",
    re.DOTALL,
)


@dataclasses.dataclass(frozen=True)
class Repository:
    url: str  # http(s), no trailing /
    suite: str
    components: tuple[str, ...]
    key: str | None  # an ASCII-armored OpenPGP public key block; None: [trusted=yes]

    @property
    def release_url(self) -> str:
        return f"{self.url}/dists/{self.suite}/Release"


@dataclasses.dataclass(frozen=True)
class AptSources:
    """What the build does with the recipe's repositories."""

    mmdebstrap_lines: tuple[str, ...]  # extra mirror arguments, keyrings in the staging dir
    image_list: str  # the content of IMAGE_LIST ("" without repositories)
    keyrings: tuple[tuple[Path, str], ...]  # (staged keyring file, its path in the image)


def parse_repositories(data: dict[Any, Any], default_suite: str) -> tuple[Repository, ...]:
    """The ``repositories`` list of recipe.yaml (``data``), validated."""
    repositories: list[Repository] = []
    for index, item in enumerate(fields.sequence(data, "repositories")):
        where = f"repositories[{index}]"
        entry = fields.mapping(item, where, REPOSITORY_FIELDS)
        prefix = f"{where}."
        url = fields.matching(
            entry, "url", URL, "an http:// or https:// URL", required=True, where=prefix
        )
        repository = Repository(
            url=url.rstrip("/"),
            suite=fields.matching(
                entry, "suite", SUITE, "a suite name like bookworm", default_suite, where=prefix
            ),
            components=fields.matching_list(
                entry, "components", COMPONENT, "like main", ("main",), prefix
            ),
            key=_key(entry, prefix),
        )
        for earlier, other in enumerate(repositories):
            if (other.url, other.suite) == (repository.url, repository.suite):
                raise BuildError(
                    f"{where} repeats repositories[{earlier}] (same url and suite); "
                    "list all its components in one entry"
                )
        repositories.append(repository)
    return tuple(repositories)


def check_against_mirror(repositories: tuple[Repository, ...], mirror: str, suite: str) -> None:
    """apt refuses one source listed twice with different options: the mirror's own suite
    cannot be an extra repository."""
    for index, repository in enumerate(repositories):
        if (repository.url, repository.suite) == (mirror.rstrip("/"), suite):
            raise BuildError(
                f"repositories[{index}] is the package mirror's own suite ({mirror} {suite}); "
                "add its components to 'components' instead"
            )


def apt_sources(repositories: tuple[Repository, ...], stage_dir: Path) -> AptSources:
    """Stage each repository's key as a keyring file; the source lines for mmdebstrap (keyrings
    in ``stage_dir``) and for the image (keyrings in IMAGE_KEYRING_DIR)."""
    build_lines, image_lines, keyrings = [], [], []
    for index, repository in enumerate(repositories):
        entry = f"{repository.url} {repository.suite} {' '.join(repository.components)}"
        if repository.key is None:
            build_lines.append(f"deb [trusted=yes] {entry}")
            image_lines.append(f"deb [trusted=yes] {entry}")
            continue
        staged = stage_dir / "keyrings" / f"kiln-extra-{index}.asc"
        if any(ch.isspace() or ch in "[]" for ch in str(staged)):
            raise BuildError(f"the build's work directory {stage_dir} has a space or bracket")
        staged.parent.mkdir(parents=True, exist_ok=True)
        staged.write_text(repository.key.strip() + "\n")
        in_image = f"{IMAGE_KEYRING_DIR}/kiln-extra-{index}.asc"
        build_lines.append(f"deb [signed-by={staged}] {entry}")
        image_lines.append(f"deb [signed-by={in_image}] {entry}")
        keyrings.append((staged, in_image))
    image_list = ""
    if image_lines:
        header = "# Written by Kiln: the extra repositories of recipe.yaml\n"
        image_list = header + "".join(f"{line}\n" for line in image_lines)
    return AptSources(tuple(build_lines), image_list, tuple(keyrings))


def _key(entry: dict[Any, Any], where: str) -> str | None:
    if entry.get("key") is None:
        return None
    key = fields.string(entry, "key", where, None)
    assert key is not None
    if "PRIVATE KEY BLOCK" in key:
        raise BuildError(f"{where}key is a private key: give the repository's public key")
    match = _KEY_BLOCK.match(key)
    body = match.group(1) if match else ""
    if not re.search(r"^[A-Za-z0-9+/]{16,}={0,2}\r?$", body, re.MULTILINE):
        raise BuildError(
            f"{where}key must be an ASCII-armored OpenPGP public key block (-----BEGIN PGP "
            "PUBLIC KEY BLOCK----- ... -----END PGP PUBLIC KEY BLOCK-----, as "
            "'gpg --armor --export' writes it); use a YAML block (key: |) to keep its lines"
        )
    return key
