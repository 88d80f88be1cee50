"""Package URLs in upstream Cachito's own forms (cachito-behaviour.md §9), which differ from
what canonical purl libraries produce: the content manifest and the Cachito-exact SBOM use
these; canonical purls (packageurl-python) are for the CycloneDX 1.6 document. Standard
library only: build hosts import it too."""

from __future__ import annotations

import re
import urllib.parse

#: hosts whose repositories get a purl type of their own
_HOST_TYPES = {"github.com": "github", "bitbucket.org": "bitbucket"}
_SCP_LIKE = re.compile(r"^(?:[\w.-]+@)?(?P<host>[\w.-]+):(?P<path>(?!//).+)$")


def enc(text: str) -> str:
    """Every reserved character escaped, ``/ : @ # +`` included."""
    return urllib.parse.quote(text, safe="")


def _host_and_path(repo_url: str) -> tuple[str, str]:
    url = repo_url.strip().rstrip("/")
    if url.startswith("git+"):
        url = url[4:]
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme and parsed.netloc:
        host, path = parsed.hostname or "", parsed.path
    else:
        scp = _SCP_LIKE.match(url)
        host, path = (scp.group("host"), scp.group("path")) if scp else ("", url)
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[:-4]
    return host.lower(), path


def vcs_purl(name: str, repo_url: str, ref: str, subpath: str | None = None) -> str:
    """A package from a git repository at a commit: ``pkg:github/ns/repo@ref`` on github.com,
    ``pkg:bitbucket/...`` on bitbucket.org, else ``pkg:generic/<name>?vcs_url=<enc(url@ref)>``
    (the name unescaped, as Cachito has it); ``#<subpath>`` for a package below the
    repository's root. ``repo_url`` may carry pip's ``git+`` prefix."""
    host, path = _host_and_path(repo_url)
    kind = _HOST_TYPES.get(host)
    if kind and "/" in path:
        namespace, repo = path.rsplit("/", 1)
        purl = f"pkg:{kind}/{namespace.lower()}/{repo.lower()}@{ref}"
    else:
        # Cachito puts the name in as it is and the URL without a pip-style "git+" prefix
        url = repo_url.strip().rstrip("/")
        url = url[4:] if url.startswith("git+") else url
        purl = f"pkg:generic/{name}?vcs_url={enc(f'{url}@{ref}')}"
    if subpath and subpath not in (".", "./"):
        purl += f"#{subpath.strip('/')}"
    return purl


def pypi_name(name: str) -> str:
    """A Python project name as Cachito's purls have it: lower-cased, every run of characters
    outside ``[A-Za-z0-9.]`` turned into ``-``."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", name).lower()


def pypi_purl(name: str, version: str) -> str:
    return f"pkg:pypi/{pypi_name(name)}@{version}"


def npm_purl(name: str, version: str) -> str:
    """``pkg:npm/chai@4.2.0``, ``pkg:npm/%40scope/name@1.0.0``."""
    return f"pkg:npm/{urllib.parse.quote(name, safe='/')}@{version}"


def golang_purl(name: str, version: str | None = None) -> str:
    """The whole module or package name encoded, ``/`` included; no version for the stdlib."""
    return f"pkg:golang/{enc(name)}" + (f"@{version}" if version else "")


def gem_purl(name: str, version: str) -> str:
    return f"pkg:gem/{name}@{version}"


def _generic_name(name: str) -> str:
    """The name of an npm/yarn ``pkg:generic`` purl: percent-encoded with ``/`` kept."""
    return urllib.parse.quote(name)


def download_purl(name: str, url: str, sha256: str | None = None) -> str:
    """A tarball or file fetched from a URL: ``pkg:generic/<name>?download_url=<enc url>``.

    With ``sha256`` it is a pip URL dependency: the name is normalized as for ``pkg:pypi``,
    the URL keeps its fragment with ``cachito_hash=sha256:<hex>`` added when the user did not
    write one, and ``&checksum=<that hash>`` follows."""
    if sha256 is None:
        return f"pkg:generic/{_generic_name(name)}?download_url={enc(url)}"
    fragment = urllib.parse.urldefrag(url).fragment
    checksum = urllib.parse.parse_qs(fragment).get("cachito_hash", [None])[0]
    if checksum is None:
        checksum = f"sha256:{sha256}"
        url = (
            f"{url}&cachito_hash={checksum}"
            if fragment
            else f"{url.rstrip('#')}#cachito_hash={checksum}"
        )
    return f"pkg:generic/{pypi_name(name)}?download_url={enc(url)}&checksum={checksum}"


def git_dependency_purl(name: str, vcs_url: str) -> str:
    """An npm/yarn git dependency: ``vcs_url`` as ``git+<url>#<commit>``."""
    return f"pkg:generic/{_generic_name(name)}?vcs_url={enc(vcs_url)}"


def file_purl(name: str, path: str) -> str:
    """An npm/yarn ``file:`` dependency: ``path`` without the ``file:`` prefix."""
    return f"pkg:generic/{_generic_name(name)}?file={enc(path)}"


def forge_purl(spec: str) -> str:
    """An npm/yarn forge shorthand, ``github:ns/name#ref`` -> ``pkg:github/ns/name@ref`` (the
    same for ``gitlab:``/``bitbucket:``; nothing lower-cased). ValueError for another form."""
    match = re.fullmatch(r"(?P<forge>[^:/]+):(?P<namespace>.+)/(?P<name>[^#/]+)#(?P<ref>.+)", spec)
    if not match:
        raise ValueError(f"Could not convert version {spec} to purl")
    return f"pkg:{match['forge']}/{match['namespace']}/{match['name']}@{match['ref']}"
