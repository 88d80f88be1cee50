"""The ``kiwi-ng`` recipe: a KIWI NG image description inside the recipe archive.

Pure python (no subprocesses, no network): finding the description file, filling the
``{{key}}`` template placeholders (kiwi-ng would take them literally) and reading the package
repositories the build uses. ``builders/backends/kiwi.py`` runs kiwi-ng.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from pathlib import Path

from builders.backends import debian_mirror as mirrors
from builders.backends.base import BuildError
from builders.backends.debian_recipe import DEBIAN_ARCHES, Recipe, render_template

CONFIG_XML = "config.xml"
#: template keys the build host provides (a recipe's template_dictionary overrides them)
HOST_MIRROR_KEY = "kiln_debian_mirror"

_TEMPLATE_KEY = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclasses.dataclass(frozen=True)
class Repository:
    uri: str  # <source path="...">, templated
    type: str  # apt-deb, rpm-md, ...
    distribution: str | None  # apt-deb: the suite; None for a flat repository
    components: tuple[str, ...]
    arches: tuple[str, ...]  # <repository arch="...">: host arches it is used on; () = all

    def used_on(self, arch: str) -> bool:
        return not self.arches or arch in self.arches

    def index_url(self) -> str | None:
        """The index file that shows the repository answers; None if Kiln cannot check it."""
        if not self.uri.startswith(("http://", "https://")):
            return None
        base = self.uri.rstrip("/")
        if self.type == "apt-deb" and self.distribution:
            return f"{base}/dists/{self.distribution}/Release"
        if self.type == "apt-deb":  # a flat repository
            return f"{base}/Release"
        if self.type == "rpm-md":
            return f"{base}/repodata/repomd.xml"
        return None

    def index_problem(self, index: str, arch: str) -> str | None:
        """Why the repository's index (its text) cannot serve an ``arch`` build, or None."""
        if self.type != "apt-deb" or not self.distribution or arch not in DEBIAN_ARCHES:
            return None
        suite = Recipe(  # the suite part of a kiln-debian recipe, for its mirror checks
            suite=self.distribution,
            variant="minbase",
            mirror=self.uri,
            components=self.components,
            packages=(),
            kernel=False,
            hostname="localhost",
            users=(),
            files=(),
            customize=(),
            squashfs_compression="zstd",
        )
        return mirrors.release_mismatch(index, suite, DEBIAN_ARCHES[arch])


@dataclasses.dataclass(frozen=True)
class BuildType:
    image: str  # <type image="...">: kis, oem, iso, ...
    filesystem: str | None
    archive: bool  # kis: pack the results into one tarball (kiwi-ng's default)
    compressed: bool  # kis: xz-compress the root file system image


@dataclasses.dataclass(frozen=True)
class Description:
    file: Path  # config.xml or <name>.kiwi
    package_manager: str  # <packagemanager>, e.g. apt
    repositories: tuple[Repository, ...]  # those kiwi-ng uses to build (not imageonly)
    types: tuple[BuildType, ...]  # the <type> elements of the selected preferences

    def repositories_for(self, arch: str) -> list[Repository]:
        return [repo for repo in self.repositories if repo.used_on(arch)]

    def kis_problem(self) -> str | None:
        """Why kiwi-ng's kis type would not give a squashfs, a kernel and an initrd file."""
        kis = [build_type for build_type in self.types if build_type.image == "kis"]
        if not kis:
            found = ", ".join(sorted({t.image for t in self.types})) or "none"
            return f"it has no kis build type (its types: {found})"
        if kis[0].filesystem != "squashfs":
            return f'its kis type has filesystem="{kis[0].filesystem or ""}", not squashfs'
        if kis[0].archive:
            return 'its kis type packs the results into one tarball (add archive="false")'
        if kis[0].compressed:
            return 'its kis type xz-compresses the root file system (drop compressed="true")'
        return None


def find_description_file(recipe_dir: Path) -> Path:
    """config.xml, else the one ``*.kiwi`` file, at the top level of the unpacked archive."""
    if (recipe_dir / CONFIG_XML).is_file():
        return recipe_dir / CONFIG_XML
    kiwi_files = sorted(p for p in recipe_dir.glob("*.kiwi") if p.is_file())
    if len(kiwi_files) == 1:
        return kiwi_files[0]
    if kiwi_files:
        names = ", ".join(p.name for p in kiwi_files)
        raise BuildError(
            f"the recipe archive has several KIWI descriptions ({names}); keep one, "
            f"or name the one to build {CONFIG_XML}"
        )
    nested = sorted(
        str(p.relative_to(recipe_dir))
        for pattern in (f"*/{CONFIG_XML}", "*/*.kiwi")
        for p in recipe_dir.glob(pattern)
    )
    hint = f" (found {', '.join(nested)}: pack the directory's contents, not the directory)"
    raise BuildError(
        f"the recipe archive has no KIWI description ({CONFIG_XML} or <name>.kiwi) at its "
        f"top level{hint if nested else ''}"
    )


def host_template(environ: Mapping[str, str], etc_apt: Path) -> dict[str, str]:
    """Template values the build host provides; a key is missing if the host has no value."""
    mirror = environ.get(mirrors.MIRROR_ENV) or mirrors.host_apt_mirror(etc_apt)
    return {HOST_MIRROR_KEY: mirror.rstrip("/")} if mirror else {}


def merged_template(user: Mapping[str, str], host: Mapping[str, str]) -> dict[str, str]:
    """The values a description is filled with: the recipe's own win over the host's."""
    return {**host, **user}


def render_text(text: str, template: Mapping[str, str], where: str) -> str:
    """Fill ``{{key}}`` placeholders; BuildError naming any key without a value."""
    if HOST_MIRROR_KEY not in template and HOST_MIRROR_KEY in _TEMPLATE_KEY.findall(text):
        raise BuildError(
            f"{where} uses {{{{{HOST_MIRROR_KEY}}}}}, but no Debian package mirror is "
            f"configured on the build host: set ${mirrors.MIRROR_ENV} or a deb source in its "
            f"apt sources, or define {HOST_MIRROR_KEY} in the recipe's template_dictionary"
        )
    return render_template(text, template, where)


def load_description(recipe_dir: Path, template: Mapping[str, str]) -> Description:
    """Find the description file, fill its placeholders (in memory) and read it."""
    path = find_description_file(recipe_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BuildError(f"{path.name} is not UTF-8 text") from None
    return parse_description(render_text(text, template, path.name), path)


def render_description(recipe_dir: Path, target: Path, template: Mapping[str, str]) -> Path:
    """Copy the description to ``target``, filling placeholders in every UTF-8 text file.

    Returns the description file inside ``target``. Symbolic links are copied as links and
    binary files as they are; every file is checked before anything is written.
    """
    description = find_description_file(recipe_dir)
    rendered: dict[Path, str] = {}
    for path in sorted(recipe_dir.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        text = _text_or_none(path)
        relative = path.relative_to(recipe_dir)
        if text is not None and _TEMPLATE_KEY.search(text):
            rendered[relative] = render_text(text, template, str(relative))
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(recipe_dir, target, symlinks=True)
    for relative, text in rendered.items():
        (target / relative).write_text(text, encoding="utf-8")  # keeps the file's mode
    return target / description.name


def parse_description(text: str, path: Path) -> Description:
    """Read the parts of a (filled) KIWI description that Kiln checks before building."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise BuildError(f"{path.name} is not valid XML: {exc}") from None
    if root.tag != "image":
        raise BuildError(f"{path.name} is not a KIWI description (its root element is not <image>)")
    used_profiles = {
        profile.get("name", "")
        for profile in root.iterfind("profiles/profile")
        if _true(profile.get("import"))
    }

    def used(element: ElementTree.Element) -> bool:
        """Sections for no profile always count; others if kiwi-ng selects one of them."""
        profiles = set(_split_list(element.get("profiles")))
        return not profiles or bool(profiles & used_profiles)

    repositories = []
    for element in root.iterfind("repository"):
        if not used(element) or _true(element.get("imageonly")):
            continue
        source = element.find("source")
        uri = "" if source is None else source.get("path", "").strip()
        if not uri:
            raise BuildError(f"{path.name}: a <repository> has no <source path=...>")
        repositories.append(
            Repository(
                uri=uri,
                type=element.get("type", "rpm-md"),
                distribution=element.get("distribution") or None,
                components=tuple((element.get("components") or "main").split()),
                arches=_split_list(element.get("arch")),
            )
        )
    preferences = [element for element in root.iterfind("preferences") if used(element)]
    managers = [e.text.strip() for p in preferences for e in p.iterfind("packagemanager") if e.text]
    types = [element for p in preferences for element in p.iterfind("type")]
    types.sort(key=lambda element: not _true(element.get("primary")))  # kiwi-ng's choice first
    return Description(
        file=path,
        package_manager=managers[0] if managers else "",
        repositories=tuple(repositories),
        types=tuple(
            BuildType(
                image=element.get("image", ""),
                filesystem=element.get("filesystem"),
                archive=_true(element.get("archive", "true")),
                compressed=_true(element.get("compressed")),
            )
            for element in types
        ),
    )


def _true(value: str | None) -> bool:
    """An XML schema boolean."""
    return (value or "").strip().lower() in ("true", "1")


def _split_list(value: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


def _text_or_none(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
