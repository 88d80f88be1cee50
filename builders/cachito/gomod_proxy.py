"""The module proxy ``go`` talks to while a gomod request runs: an HTTP server on loopback in
front of the operator's ``GOPROXY`` list, so that every module file goes through the shared
dependency cache (builders/cachito/dep_cache.py).

``go`` asks it for ``<module>/@v/<version>.{info,mod,zip}`` (``go help goproxy``). Each such
file of a released or pseudo-version is immutable, so it is served from the dependency cache
(identity ``gomod:<module>@<version>:<version>.<ext>``) and only fetched from the upstream
proxies when the cache lacks it; a second request for the same modules downloads nothing.
Everything else (``@v/list``, ``@latest``, branch queries, ``/sumdb/...``) changes over time and
is passed through uncached. ``direct`` in the list stays ``go``'s own business (fetching from
version control); what it fetches is stored in the cache afterwards (builders/cachito/gomod.py).

Cached files are answered one at a time (the dependency cache and its counters are not
shared between threads), pass-through answers concurrently. Every cached file counts towards
the request's byte limit. Upstream proxies are ``http(s)://`` or ``file://`` URLs; ``,``
falls through to the next one on 404/410 only, ``|`` on any error, as ``go`` does.
Credentials in a proxy URL are sent as basic auth and never appear in a log or an error.
"""

from __future__ import annotations

import base64
import dataclasses
import http.server
import re
import shutil
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from builders.cachito.context import DependencyCache
from builders.cachito.errors import ValidationError

CHUNK = 1024 * 1024
TIMEOUT = 120  # seconds per upstream request
#: ``<escaped module>/@v/<escaped version>.<ext>``: the immutable files of one version
VERSION_FILE = re.compile(r"^(?P<module>.+)/@v/(?P<version>[^/]+)\.(?P<ext>info|mod|zip)$")
#: a canonical semantic version (pseudo-versions included): the only cacheable ones
CANONICAL = re.compile(r"^v\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+incompatible)?$")


def unescape(text: str) -> str | None:
    """``github.com/!azure`` → ``github.com/Azure``; None if ``text`` is not a valid escaping
    (an upper-case letter, or ``!`` before anything but a lower-case letter)."""
    out: list[str] = []
    bang = False
    for char in text:
        if bang:
            if not char.islower():
                return None
            out.append(char.upper())
            bang = False
        elif char == "!":
            bang = True
        elif char.isupper():
            return None
        else:
            out.append(char)
    return None if bang else "".join(out)


def redact(url: str) -> str:
    """A proxy URL without its credentials."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


class ProxyAnswer(Exception):
    """An HTTP error answer to ``go``: ``status`` and a one-line text it prints."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status, self.text = status, text


@dataclasses.dataclass(frozen=True)
class Upstream:
    url: str  # without credentials
    authorization: str | None  # a basic auth header value from the URL's user info
    any_error_falls_through: bool  # "|" after it, not ","


@dataclasses.dataclass(frozen=True)
class ServedFile:
    module: str
    version: str
    path: Path  # the local copy go received
    sha256: str


def parse_goproxy(goproxy: str) -> tuple[list[Upstream], bool]:
    """The upstream proxies of a ``GOPROXY`` value, and whether it ends in ``direct``."""
    upstreams: list[Upstream] = []
    for item in re.finditer(r"([^,|]+)([,|]?)", goproxy.strip()):
        entry, separator = item.group(1).strip(), item.group(2)
        if entry == "off":
            break
        if entry == "direct":
            return upstreams, True
        parts = urllib.parse.urlsplit(entry)
        authorization = None
        if parts.username is not None:
            user_info = f"{urllib.parse.unquote(parts.username)}:"
            user_info += urllib.parse.unquote(parts.password or "")
            authorization = "Basic " + base64.b64encode(user_info.encode()).decode()
        upstreams.append(Upstream(redact(entry).rstrip("/"), authorization, separator == "|"))
    return upstreams, False


class CachingModuleProxy:
    """``with CachingModuleProxy(goproxy, cache, work_dir, log, max_bytes) as proxy:`` run go
    with ``GOPROXY=proxy.goproxy``; ``proxy.served`` then maps each file's path below the
    proxy root to what go received; ``proxy.raise_failure()`` re-raises what went wrong inside
    (a cache error, the size limit) instead of go's vaguer account of it."""

    def __init__(
        self,
        goproxy: str,
        cache: DependencyCache,
        work_dir: Path,
        log: Callable[[str], None],
        max_bytes: int,
    ) -> None:
        self.upstreams, self.direct = parse_goproxy(goproxy)
        self.served: dict[str, ServedFile] = {}
        self.served_bytes = 0
        self._cache, self._files, self._log, self._max_bytes = cache, work_dir, log, max_bytes
        self._lock = threading.Lock()
        self._failure: BaseException | None = None
        handler = type("Handler", (_Handler,), {"proxy": self})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def goproxy(self) -> str:
        """The ``GOPROXY`` value for go."""
        return f"{self.url},direct" if self.direct else self.url

    def __enter__(self) -> CachingModuleProxy:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    # -- answers ------------------------------------------------------------------------------
    def answer(self, relative: str) -> Path:
        """The local file answering a request for ``relative`` (below the proxy root)."""
        if ".." in relative.split("/") or relative.startswith("/"):
            raise ProxyAnswer(404, f"not found: {relative}")
        match = VERSION_FILE.match(relative)
        module = unescape(match.group("module")) if match else None
        version = unescape(match.group("version")) if match else None
        if match and module and version and CANONICAL.match(version):
            with self._lock:
                return self._cached(relative, module, version, match.group("ext"))
        target = self._files / "passed" / f"{threading.get_ident()}"
        self._download(relative, target, f"{relative}")
        return target

    def _cached(self, relative: str, module: str, version: str, ext: str) -> Path:
        if relative in self.served:
            return self.served[relative].path
        target = self._files / "served" / relative
        identity = f"gomod:{module}@{version}:{version}.{ext}"

        def download(path: Path) -> None:
            self._download(relative, path, f"{module}@{version} ({version}.{ext})")

        try:
            sha256 = self._cache.fetch("gomod", identity, target, download)
        except ProxyAnswer:
            target.unlink(missing_ok=True)
            raise
        size = target.stat().st_size
        if self.served_bytes + size > self._max_bytes:
            self._failure = _limit_error(self._max_bytes)
            raise ProxyAnswer(403, str(self._failure))
        self.served_bytes += size
        self.served[relative] = ServedFile(module, version, target, sha256)
        return target

    def _download(self, relative: str, target: Path, what: str) -> None:
        """Fetch ``relative`` from the first upstream proxy that has it."""
        target.parent.mkdir(parents=True, exist_ok=True)
        problems: list[str] = []
        for upstream in self.upstreams:
            request = urllib.request.Request(
                f"{upstream.url}/{urllib.parse.quote(relative, safe='/!')}"
            )
            if upstream.authorization:
                request.add_header("Authorization", upstream.authorization)
            try:
                with (
                    urllib.request.urlopen(request, timeout=TIMEOUT) as response,  # noqa: S310
                    target.open("wb") as out,
                ):
                    shutil.copyfileobj(response, out, CHUNK)
                return
            except urllib.error.HTTPError as exc:
                if exc.code not in (404, 410) and not upstream.any_error_falls_through:
                    raise ProxyAnswer(
                        502, f"{upstream.url} answered {exc.code} for {what}"
                    ) from None
                problems.append(f"{upstream.url}: {exc.code}")
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                missing = isinstance(reason, FileNotFoundError | NotADirectoryError)
                if not missing and not upstream.any_error_falls_through:
                    raise ProxyAnswer(502, f"{upstream.url} failed for {what}: {reason}") from None
                problems.append(f"{upstream.url}: {'not found' if missing else reason}")
        where = "; ".join(problems) if problems else "no module proxy is configured"
        raise ProxyAnswer(404, f"not found: {what} is on none of the module proxies ({where})")

    def record_failure(self, exc: BaseException) -> None:
        self._failure = self._failure or exc


def _limit_error(max_bytes: int) -> BaseException:
    return ValidationError(f"The Go modules of the request exceed the limit of {max_bytes} bytes")


class _Handler(http.server.BaseHTTPRequestHandler):
    proxy: CachingModuleProxy

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        relative = urllib.parse.unquote(self.path.split("?", 1)[0]).lstrip("/")
        try:
            path = self.proxy.answer(relative)
        except ProxyAnswer as exc:
            self._send_text(exc.status, exc.text)
            return
        except Exception as exc:  # the cache or this code failed: go must not hide it
            self.proxy.record_failure(exc)
            self._send_text(500, f"the module proxy failed: {exc}")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(path.stat().st_size))
        self.end_headers()
        with path.open("rb") as data:
            shutil.copyfileobj(data, self.wfile, CHUNK)

    def _send_text(self, status: int, text: str) -> None:
        body = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
