"""pip requirements files as a Cachito request reads them (cachito-behaviour.md §8, "Input
rules"): parsed with pip-requirements-parser, checked with upstream Cachito's rules and
messages, and rewritten so their URL and VCS lines point into the bundle.

- PyPI requirements pinned with ``==`` or ``===``;
- URL requirements (``name @ https://...`` or ``https://...#egg=name``) with exactly one hash,
  ``--hash`` or the ``#cachito_hash=<algorithm>:<digest>`` fragment, and an sdist extension;
- VCS requirements only git, at a full 40-hex commit (``git+https://host/ns/repo@<sha>``);
- once any requirement of a file has ``--hash`` (or the file says ``--require-hashes``) every
  requirement needs one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import urllib.parse
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import pip_requirements_parser as parser

from builders.cachito.errors import InvalidChecksum, UnsupportedFeature, ValidationError

#: sdist archive extensions upstream accepts, the preferred first
SDIST_FILE_EXTENSIONS = (".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tar.Z", ".tar")
URL_SCHEMES = frozenset({"http", "https", "ftp"})
GIT_REF_IN_PATH = re.compile(r"@[a-fA-F0-9]{40}$")
#: options that make pip look somewhere other than the bundle (upstream rejects them)
REJECTED_OPTIONS = frozenset(
    {"index_url", "extra_index_urls", "no_index", "find_links", "only_binary"}
)
#: a path component Kiln writes under deps/pip/ for a git dependency
_SAFE_COMPONENT = re.compile(r"^[A-Za-z0-9._~+:@-]+$")
#: the variable (kind path: deps/pip) rewritten requirements files find their archives by
DEPS_DIR_VARIABLE = "KILN_PIP_DEPS_DIR"


def safe_name(name: str) -> str:
    """The name as setuptools spells a project: runs outside ``[A-Za-z0-9.]`` become ``-``."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", name)


@dataclasses.dataclass(frozen=True)
class GitInfo:
    """A VCS requirement's repository: ``url`` without ``git+`` and the commit; ``host``,
    ``namespace`` and ``repo`` name its place under deps/pip/."""

    url: str
    ref: str
    host: str
    namespace: str
    repo: str

    @property
    def bundle_path(self) -> str:
        parts = [self.host, *self.namespace.split("/"), self.repo]
        return "/".join(
            [*(p for p in parts if p), f"{self.repo}-external-gitcommit-{self.ref}.tar.gz"]
        )


@dataclasses.dataclass(frozen=True)
class Requirement:
    kind: str  # "pypi", "url" or "vcs"
    name: str  # as written (or from #egg=)
    version: str | None  # the pinned version (pypi)
    url: str | None  # url and vcs: the URL as written, fragment included
    hashes: tuple[str, ...]  # --hash values, "<algorithm>:<digest>"
    qualifiers: dict[str, str]  # the URL fragment's key=value pairs
    extras: tuple[str, ...]
    marker: str | None
    download_line: str  # the requirement without its options, for messages
    line_number: int

    @property
    def package(self) -> str:
        return safe_name(self.name)

    @property
    def url_hash(self) -> str:
        """A URL requirement's one hash: ``--hash`` or ``#cachito_hash``."""
        return self.hashes[0] if self.hashes else self.qualifiers["cachito_hash"]

    @property
    def url_with_hash(self) -> str:
        """The URL with ``#cachito_hash`` added when it had none (upstream's version field)."""
        assert self.url is not None
        if "cachito_hash" in self.qualifiers:
            return self.url
        parsed = urllib.parse.urlparse(self.url)
        fragment = f"cachito_hash={self.url_hash}"
        if parsed.fragment:
            fragment = f"{parsed.fragment}&{fragment}"
        return parsed._replace(fragment=fragment).geturl()

    def git_info(self) -> GitInfo:
        assert self.url is not None
        url = urllib.parse.urlparse(self.url.removeprefix("git+"))
        ref, clean_path = url.path[-40:], url.path[:-41]
        clean_url = url._replace(path=clean_path, params="", query="", fragment="").geturl()
        host = url.netloc.rpartition("@")[2]
        namespace, _, repo = clean_path.strip("/").removesuffix(".git").rpartition("/")
        for part in (host, *namespace.split("/"), repo):
            if part and (part in (".", "..") or not _SAFE_COMPONENT.match(part)):
                raise ValidationError(
                    f"Cannot place {self.download_line} in the bundle: {part!r} is not a "
                    "plain host or path name"
                )
        if not host or not repo:
            raise ValidationError(f"No host or repository name in {self.download_line}")
        return GitInfo(clean_url, ref.lower(), host, namespace, repo)

    @property
    def url_bundle_path(self) -> str:
        """Where a URL requirement's archive goes under deps/pip/."""
        assert self.url is not None
        algorithm, _, digest = self.url_hash.partition(":")
        path = urllib.parse.urlparse(self.url).path
        extension = next(ext for ext in SDIST_FILE_EXTENSIONS if path.endswith(ext))
        name = self.package
        return f"external-{name}/{name}-external-{algorithm}-{digest}{extension}"


@dataclasses.dataclass
class RequirementsFile:
    path: Path
    shown: str  # the path in the repository, for messages
    requirements: list[Requirement]
    require_hashes: bool
    ignored_options: list[str]


def _written_option(line: str) -> str:
    return line.split()[0].split("=", 1)[0] if line.split() else line


def _qualifiers(url: str) -> dict[str, str]:
    fragment = urllib.parse.urlparse(url).fragment
    found: dict[str, str] = {}
    for section in fragment.split("&"):
        key, sep, value = section.partition("=")
        if sep:
            found[key] = urllib.parse.unquote(value)
    return found


def _kind(req: parser.InstallRequirement, line: str) -> str:
    link = req.link
    if link is None:
        return "pypi"
    scheme = link.scheme.lower()
    if scheme in URL_SCHEMES:
        return "url"
    if link.is_vcs:
        return "vcs"
    if not scheme or scheme == "file":
        raise ValidationError(f"Direct references with 'file' scheme are not supported, {line!r}")
    raise ValidationError(f"Direct references with {scheme!r} scheme are not supported, {line!r}")


def _requirement(req: parser.InstallRequirement) -> Requirement:
    line = req.line or ""
    kind = _kind(req, line)
    url = req.link.url if req.link is not None else None
    if not req.name:
        if kind == "pypi":
            raise ValidationError(f"Unable to parse the requirement {line!r}")
        raise ValidationError(f"Egg name could not be determined from the requirement {line!r}")
    extras = tuple(sorted(req.extras))
    marker = str(req.marker) if req.marker else None
    version = None
    if kind == "pypi":
        specs = list(req.specifier or [])
        spec = "".join(str(s) for s in specs)
        download_line = f"{req.name}{'[' + ','.join(extras) + ']' if extras else ''}{spec}"
        if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
            version = specs[0].version
    else:
        download_line = f"{req.name} @ {url}"
    if marker:
        download_line += f" ; {marker}"
    return Requirement(
        kind=kind,
        name=req.name,
        version=version,
        url=url,
        hashes=tuple(req.hash_options),
        qualifiers=_qualifiers(url) if url else {},
        extras=extras,
        marker=marker,
        download_line=download_line,
        line_number=req.line_number or 0,
    )


def read_requirements_file(path: Path, shown: str) -> RequirementsFile:
    """Parse and check one requirements file (nested ``-r``/``-c`` files are not followed,
    as upstream does not). Raises ValidationError for what upstream refuses."""
    try:
        parsed = parser.RequirementsFile.from_file(str(path), include_nested=False)
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"Cannot read the requirements file {shown}: {exc}") from None
    for invalid in parsed.invalid_lines:
        line = (invalid.line or "").strip()
        if "no such option" in invalid.error_message:
            raise ValidationError(f"Unknown requirements file option {_written_option(line)!r}")
        raise ValidationError(
            f"Unable to parse the requirement {line!r}: {invalid.error_message.splitlines()[0]}"
        )
    require_hashes = False
    rejected: list[str] = []
    ignored: list[str] = []
    for option in parsed.options:
        written = _written_option(option.line or "")
        if option.options.get("require_hashes"):
            require_hashes = True
        elif set(option.options) & REJECTED_OPTIONS:
            rejected.append(written)
        elif "trusted_hosts" not in option.options:
            ignored.append(written)
    if rejected:
        raise ValidationError(
            f"Cachito does not support the following options: {', '.join(rejected)}"
        )
    requirements = [_requirement(req) for req in parsed.requirements]
    if any(req.hashes for req in requirements):
        require_hashes = True
    validate_requirements(requirements, require_hashes)
    return RequirementsFile(path, shown, requirements, require_hashes, ignored)


def validate_requirements(requirements: Iterable[Requirement], require_hashes: bool) -> None:
    """Upstream Cachito's rules, with its messages."""
    for req in requirements:
        line = req.download_line
        if req.kind == "pypi" and req.version is None:
            raise ValidationError(f"Requirement must be pinned to an exact version: {line}")
        if req.kind == "vcs":
            assert req.url is not None
            url = urllib.parse.urlparse(req.url)
            if not url.scheme.startswith("git"):
                raise ValidationError(f"Unsupported VCS for {line}: {url.scheme}")
            if not GIT_REF_IN_PATH.search(url.path):
                raise ValidationError(f"No git ref in {line} (expected 40 hexadecimal characters)")
            if url.scheme not in ("git+https", "git+http"):
                raise UnsupportedFeature(
                    f"Only git+https and git+http dependencies can be fetched: {line}"
                )
        if req.kind == "url":
            assert req.url is not None
            count = len(req.hashes) + (1 if req.qualifiers.get("cachito_hash") else 0)
            if count != 1:
                raise ValidationError(
                    f"URL requirement must specify exactly one hash, but specifies {count}: "
                    f"{line}. Use the --hash option or the #cachito_hash URL fragment, but not "
                    "both (or more than one --hash)."
                )
            path = urllib.parse.urlparse(req.url).path
            if not path.endswith(SDIST_FILE_EXTENSIONS):
                raise ValidationError(
                    "URL for requirement does not contain any recognized file extension: "
                    f"{line} (expected one of {', '.join(SDIST_FILE_EXTENSIONS)})"
                )
        hashes = [req.url_hash] if req.kind == "url" else list(req.hashes)
        if require_hashes and not hashes:
            raise ValidationError(f"Hash is required, dependency does not specify any: {line}")
        for spec in hashes:
            algorithm, _, digest = spec.partition(":")
            if not re.fullmatch(r"[0-9a-fA-F]+", digest):
                raise ValidationError(
                    f"Not a valid hash specifier: {spec!r} (expected algorithm:digest)"
                )
            if algorithm not in hashlib.algorithms_available or algorithm.startswith("shake"):
                raise ValidationError(f"Unsupported hash algorithm {algorithm!r} in {line}")


def matches_any_hash(path: Path, hashes: Iterable[str]) -> bool:
    """Whether the file matches one of the ``<algorithm>:<digest>`` specifiers."""
    wanted: dict[str, set[str]] = {}
    for spec in hashes:
        algorithm, _, digest = spec.partition(":")
        wanted.setdefault(algorithm, set()).add(digest.lower())
    hashers = {algorithm: hashlib.new(algorithm) for algorithm in wanted}
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            for hasher in hashers.values():
                hasher.update(chunk)
    return any(hashers[a].hexdigest() in wanted[a] for a in wanted)


def check_hashes(path: Path, hashes: Iterable[str], shown: str) -> None:
    if not matches_any_hash(path, hashes):
        raise InvalidChecksum(
            f"Failed to verify checksum of {shown} against any of the provided hashes"
        )


def bundle_line(req: Requirement, bundle_path: str, sha256: str) -> str:
    """A URL or VCS requirement pointing at its archive in the bundle: a ``file://`` URL under
    ``${KILN_PIP_DEPS_DIR}``, which pip expands from the environment (a path variable, so
    absolute once joined onto the bundle's root); ``#sha256=`` lets pip check it."""
    qualifiers = {k: v for k, v in req.qualifiers.items() if k not in ("egg", "sha256")}
    qualifiers["sha256"] = sha256
    fragment = "&".join(
        f"{key}={urllib.parse.quote(value, safe=':')}" for key, value in qualifiers.items()
    )
    path = urllib.parse.quote(str(PurePosixPath(bundle_path)), safe="/:")
    extras = f"[{','.join(req.extras)}]" if req.extras else ""
    line = f"{req.name}{extras} @ file://${{{DEPS_DIR_VARIABLE}}}/{path}#{fragment}"
    if req.marker:
        line += f" ; {req.marker}"
    return line + "".join(f" --hash={spec}" for spec in req.hashes)


def rewrite_requirements(text: str, replacements: dict[int, str]) -> str:
    """``text`` with the logical lines starting at the given (1-based) line numbers replaced,
    their continuation lines dropped."""
    lines = text.splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        number = index + 1
        if number in replacements:
            out.append(replacements[number])
            while lines[index].endswith("\\") and index + 1 < len(lines):
                index += 1
        else:
            out.append(lines[index])
        index += 1
    return "\n".join(out) + "\n"
