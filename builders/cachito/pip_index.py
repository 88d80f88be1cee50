"""The package index a pip request fetches sdists from (the operator's ``pip_index_url``,
https://pypi.org by default), read through its Simple API as pip reads it: PEP 691 JSON when
the index offers it, else PEP 503 HTML. Upstream Cachito's choice of sdist: any spelling of
the name, the same version, not yanked, ``.tar.gz`` before ``.zip`` before the rest."""

from __future__ import annotations

import json
import re
import ssl
import tarfile
import urllib.parse
import zipfile
from collections.abc import Iterable
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import Any

import urllib3
from packaging.utils import canonicalize_name, canonicalize_version

from builders.cachito.errors import InvalidRequestData, NetworkError, ValidationError
from builders.cachito.pip_requirements import SDIST_FILE_EXTENSIONS

_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
_SDIST_EXT_PATTERN = "|".join(map(re.escape, SDIST_FILE_EXTENSIONS))


def write_capped(chunks: Iterable[bytes], target: Path, budget: int, too_big: str) -> None:
    """Write ``chunks`` to ``target``; ValidationError(``too_big``) past ``budget`` bytes."""
    written = 0
    with target.open("wb") as out:
        for chunk in chunks:
            written += len(chunk)
            if written > budget:
                raise ValidationError(too_big)
            out.write(chunk)


class PackageIndex:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = urllib3.PoolManager(
            # the host's trust store (SSL_CERT_FILE honoured): where an operator puts the CA
            # of an internal index or an intercepting proxy
            ssl_context=ssl.create_default_context(),
            retries=urllib3.Retry(
                total=4, backoff_factor=0.5, status_forcelist=(429, 500, 502, 503, 504)
            ),
            timeout=urllib3.Timeout(connect=30, read=120),
        )

    def find_sdist(self, name: str, version: str) -> dict[str, Any]:
        """The sdist of ``name==version``: {name, version, filename, url, sha256, size,
        yanked}, ``name`` and ``version`` spelled as in its file name."""
        url = f"{self.base_url}/simple/{canonicalize_name(name)}/"
        try:
            response = self._http.request("GET", url, headers={"Accept": _ACCEPT})
        except urllib3.exceptions.HTTPError as exc:
            raise NetworkError(f"PyPI query failed: {url}: {exc}") from None
        if response.status == 404:
            raise InvalidRequestData(
                f"The package {name} is not in the package index {self.base_url}"
            )
        if response.status >= 400:
            raise NetworkError(f"PyPI query failed: {url} answered HTTP status {response.status}")
        files = _index_files(url, response.headers.get("Content-Type", ""), response.data)
        sdists = _matching_sdists(files, name, version)
        if not sdists:
            raise InvalidRequestData(f"No sdists found for package {name}=={version}")
        best = max(sdists, key=_sdist_preference)
        if best["yanked"]:
            raise InvalidRequestData(f"All sdists for package {name}=={version} are yanked")
        return best

    def download(self, url: str, target: Path, budget: int, too_big: str) -> None:
        """A file the index links to (the operator's index, so no address guard)."""
        try:
            response = self._http.request("GET", url, preload_content=False)
            try:
                if response.status >= 400:
                    raise NetworkError(f"Failed to download {url}: HTTP status {response.status}")
                write_capped(response.stream(1024 * 1024), target, budget, too_big)
            finally:
                response.release_conn()
        except urllib3.exceptions.HTTPError as exc:
            raise NetworkError(f"Failed to download {url}: {exc}") from None


class _HtmlLinks(HTMLParser):
    """The ``<a>`` elements of a PEP 503 page: (href, text, yanked)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, bool]] = []
        self._open: tuple[str, bool] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            found = dict(attrs)
            self._open = (found.get("href") or "", "data-yanked" in found)
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.links.append((self._open[0], "".join(self._text).strip(), self._open[1]))
            self._open = None


def _index_files(url: str, content_type: str, body: bytes) -> list[dict[str, Any]]:
    """The files of a project page, PEP 691 JSON or PEP 503 HTML: {filename, url, sha256,
    size, yanked}."""
    files: list[dict[str, Any]] = []
    if "json" in content_type:
        try:
            entries = json.loads(body)["files"]
        except (ValueError, KeyError, TypeError):
            raise NetworkError(f"PyPI query failed: {url} answered an unreadable page") from None
        for entry in entries:
            files.append(
                {
                    "filename": str(entry.get("filename", "")),
                    "url": urllib.parse.urljoin(url, str(entry.get("url", ""))),
                    "sha256": (entry.get("hashes") or {}).get("sha256"),
                    "size": entry.get("size"),
                    "yanked": bool(entry.get("yanked")),
                }
            )
        return files
    page = _HtmlLinks()
    page.feed(body.decode("utf-8", errors="replace"))
    for href, text, yanked in page.links:
        link = urllib.parse.urljoin(url, href)
        fragment = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(link).fragment))
        filename = text or PurePosixPath(urllib.parse.urlparse(link).path).name
        files.append(
            {
                "filename": filename,
                "url": link,
                "sha256": fragment.get("sha256"),
                "size": None,
                "yanked": yanked,
            }
        )
    return files


def _matching_sdists(files: list[dict[str, Any]], name: str, version: str) -> list[dict[str, Any]]:
    """Upstream's match: ``<any spelling of the name>-<same version><sdist extension>``."""
    pattern = re.escape(canonicalize_name(name)).replace("\\-", "[-_.]+")
    sdist = re.compile(rf"^({pattern})-(.+)(?:{_SDIST_EXT_PATTERN})$", re.IGNORECASE)
    wanted = canonicalize_version(version)
    found = []
    for entry in files:
        match = sdist.match(entry["filename"])
        if not match or "/" in entry["filename"] or canonicalize_version(match.group(2)) != wanted:
            continue
        found.append({**entry, "name": match.group(1), "version": match.group(2)})
    return found


def _sdist_preference(sdist: dict[str, Any]) -> tuple[int, int]:
    """Not yanked first; then .tar.gz, .zip, the rest."""
    filename = sdist["filename"]
    kind = 2 if filename.endswith(".tar.gz") else 1 if filename.endswith(".zip") else 0
    return (0 if sdist["yanked"] else 1), kind


def check_sdist_metadata(path: Path) -> None:
    """An sdist has a PKG-INFO file (upstream's check)."""
    if path.name.endswith(".tar.Z"):
        return
    try:
        if path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        else:
            with tarfile.open(path) as tar:
                names = tar.getnames()
    except tarfile.TarError as exc:
        raise ValidationError(f"Cannot open {path.name} as a Tar file. Error: {exc}") from None
    except zipfile.BadZipFile as exc:
        raise ValidationError(f"Cannot open {path.name} as a Zip file. Error: {exc}") from None
    if not any(PurePosixPath(name).name == "PKG-INFO" for name in names):
        raise ValidationError(
            f"{path.name} does not include metadata (there is no PKG-INFO file). It is not a "
            "valid sdist and cannot be downloaded from PyPI. Consider editing your requirements "
            "file to download the package from git or a direct download URL instead."
        )
