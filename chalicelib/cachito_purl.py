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
    ``pkg:bitbucket/...`` on bitbucket.org, else ``pkg:generic/<name>?vcs_url=<enc(url@ref)>``;
    ``#<subpath>`` for a package below the repository's root."""
    host, path = _host_and_path(repo_url)
    kind = _HOST_TYPES.get(host)
    if kind and "/" in path:
        namespace, repo = path.rsplit("/", 1)
        purl = f"pkg:{kind}/{namespace.lower()}/{repo.lower()}@{ref}"
    else:
        vcs_url = f"{repo_url.rstrip('/')}@{ref}"
        purl = f"pkg:generic/{enc(name)}?vcs_url={enc(vcs_url)}"
    if subpath and subpath not in (".", "./"):
        purl += f"#{subpath.strip('/')}"
    return purl


def pypi_purl(name: str, version: str) -> str:
    normalized = re.sub(r"[^A-Za-z0-9.]+", "-", name).lower()
    return f"pkg:pypi/{normalized}@{version}"


def npm_purl(name: str, version: str) -> str:
    """``pkg:npm/chai@4.2.0``, ``pkg:npm/%40scope/name@1.0.0``."""
    return f"pkg:npm/{urllib.parse.quote(name, safe='/')}@{version}"


def golang_purl(name: str, version: str | None = None) -> str:
    """The whole module or package name encoded, ``/`` included; no version for the stdlib."""
    return f"pkg:golang/{enc(name)}" + (f"@{version}" if version else "")


def gem_purl(name: str, version: str) -> str:
    return f"pkg:gem/{name}@{version}"


def download_purl(name: str, url: str, sha256: str | None = None) -> str:
    """A tarball or file fetched from a URL."""
    purl = f"pkg:generic/{enc(name)}?download_url={enc(url)}"
    return purl + (f"&checksum=sha256:{sha256}" if sha256 else "")


def git_dependency_purl(name: str, vcs_url: str) -> str:
    """An npm/yarn git dependency: ``vcs_url`` as ``git+<url>#<commit>``."""
    return f"pkg:generic/{enc(name)}?vcs_url={enc(vcs_url)}"


def file_purl(name: str, path: str) -> str:
    return f"pkg:generic/{enc(name)}?file={enc(path)}"
