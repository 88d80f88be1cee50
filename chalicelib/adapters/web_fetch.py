"""Fetch a user-given URL for `web-download` image import without becoming an SSRF proxy.

Every URL (the first and each redirect) must be http(s) with a host and no credentials. The host
is resolved once; if any address is internal (loopback, link-local, private, shared, reserved,
multicast, unspecified, or an IPv6 form wrapping one) the fetch is refused unless the operator's
allow-list covers it. The connection goes to the checked address (no second lookup, so DNS
rebinding cannot swap it) with the original Host header, SNI and certificate hostname.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import re
import socket
import urllib.parse
from collections.abc import Iterator

import urllib3

try:
    import certifi

    _CA_CERTS: str | None = certifi.where()
except ImportError:  # pragma: no cover - system bundle instead
    _CA_CERTS = None

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class FetchRefused(Exception):
    """The URL (or a redirect) points somewhere Kiln may not fetch from."""


class FetchFailed(Exception):
    """The fetch itself failed: DNS, connection, timeout, HTTP status >= 400, too many redirects."""


@dataclasses.dataclass(frozen=True)
class AllowList:
    """Operator allow-list: CIDRs or single IPs Kiln may fetch from even though internal."""

    entries: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.networks()  # ValueError on a bad entry

    @classmethod
    def parse(cls, text: str) -> AllowList:
        """Comma and/or whitespace separated entries; raises ValueError on a bad one."""
        return cls(tuple(part for part in re.split(r"[\s,]+", text) if part))

    def networks(self) -> tuple[IPNetwork, ...]:
        networks = []
        for entry in self.entries:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError as exc:
                raise ValueError(f"bad allow-list entry {entry!r}: {exc}") from None
        return tuple(networks)

    def allows(self, address: IPAddress) -> bool:
        candidates = [address, *_embedded_ipv4(address)]
        return any(ip in net for net in self.networks() for ip in candidates)


def _embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address wraps: mapped, 6to4, teredo (server, client), NAT64."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def _internal_reason(address: IPAddress) -> str | None:
    """Why this address is not a public unicast one, or None when it is.

    An IPv4-mapped or NAT64 address is judged by the IPv4 address it stands for (the wrapper
    ranges themselves count as reserved); 6to4 and teredo by both the wrapper and what it wraps.
    """
    judged: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address) and (
        address.ipv4_mapped is not None or address in _NAT64
    ):
        judged = []
    for ip in (*judged, *_embedded_ipv4(address)):
        checks = [
            (ip.is_loopback, "loopback"),
            (ip.is_link_local, "link-local"),
            (ip.is_unspecified, "unspecified"),
            (ip.is_multicast, "multicast"),
            (ip.is_private, "private"),
            (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED, "shared address space"),
            (ip.is_reserved, "reserved"),
            (not ip.is_global, "not globally routable"),
        ]
        for hit, reason in checks:
            if hit:
                return reason if ip == address else f"{reason} ({ip} inside {address})"
    return None


@dataclasses.dataclass(frozen=True)
class _Target:
    url: str
    scheme: str
    host: str  # ASCII hostname or bare IP literal
    port: int
    host_header: str
    path: str


def _parse(url: str, what: str) -> _Target:
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchRefused(f"{what} {url!r} is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchRefused(f"{what} {url!r}: only http and https URLs can be imported")
    if not parts.hostname:
        raise FetchRefused(f"{what} {url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise FetchRefused(f"{what} {url!r}: credentials in the URL are not accepted")
    host = parts.hostname
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise FetchRefused(f"{what} {url!r} has an invalid host name") from None
    default = 443 if scheme == "https" else 80
    port = port or default
    bracketed = f"[{host}]" if ":" in host else host
    host_header = bracketed if port == default else f"{bracketed}:{port}"
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return _Target(url, scheme, host, port, host_header, path)


def _resolve(target: _Target, allow: AllowList, what: str) -> list[str]:
    """The host's addresses, refusing if any is internal and not allow-listed."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise FetchFailed(f"cannot resolve {target.host!r}: {exc}") from None
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        text = str(sockaddr[0]).split("%", 1)[0]
        if text not in addresses:
            addresses.append(text)
    if not addresses:
        raise FetchFailed(f"{target.host!r} resolved to no addresses")
    for text in addresses:
        address = ipaddress.ip_address(text)
        reason = _internal_reason(address)
        if reason is not None and not allow.allows(address):
            raise FetchRefused(
                f"{what} {target.url!r}: host {target.host!r} resolves to {address}, "
                f"which is {reason} and not in the allow-list"
            )
    return addresses


def check_url(url: str, allow: AllowList = AllowList()) -> None:
    """Refuse (FetchRefused) a URL open_url would refuse before connecting: its scheme, form or
    the addresses its host resolves to now. A name that does not resolve is left to the fetch."""
    target = _parse(url, "URL")
    try:
        _resolve(target, allow, "URL")
    except FetchFailed:
        return


class Download:
    """An open, streaming response; valid only inside `open_url`'s `with` block."""

    def __init__(self, final_url: str, response: urllib3.BaseHTTPResponse, chunk_size: int):
        self.final_url = final_url
        self._response = response
        self._chunk_size = chunk_size
        encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
        length = response.headers.get("Content-Length")
        self.size: int | None = int(length) if length and length.isdigit() and not encoded else None
        self.content_type: str | None = response.headers.get("Content-Type")

    def chunks(self) -> Iterator[bytes]:
        """The body, in pieces of at most `chunk_size` bytes."""
        try:
            for chunk in self._response.stream(self._chunk_size, decode_content=True):
                if chunk:
                    yield chunk
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise FetchFailed(f"reading {self.final_url!r} failed: {exc}") from None


def _request(
    target: _Target, addresses: list[str], timeout: float
) -> tuple[urllib3.HTTPConnectionPool, urllib3.BaseHTTPResponse]:
    """GET the target from the first checked address that accepts a connection."""
    headers = {
        "Host": target.host_header,
        "User-Agent": "kiln-web-download/1",
        "Accept-Encoding": "identity",
    }
    errors: list[str] = []
    for address in addresses:
        pool: urllib3.HTTPConnectionPool
        if target.scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                address,
                target.port,
                maxsize=1,
                cert_reqs="CERT_REQUIRED",
                ca_certs=_CA_CERTS,
                server_hostname=target.host,
                assert_hostname=target.host,
            )
        else:
            pool = urllib3.HTTPConnectionPool(address, target.port, maxsize=1)
        try:
            response = pool.urlopen(
                "GET",
                target.path,
                headers=headers,
                retries=False,
                redirect=False,
                preload_content=False,
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
                assert_same_host=False,
            )
        except (
            urllib3.exceptions.NewConnectionError,
            urllib3.exceptions.ConnectTimeoutError,
        ) as exc:  # this address is unreachable: try the next checked one
            pool.close()
            errors.append(f"{address}: {exc}")
            continue
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            pool.close()
            raise FetchFailed(f"fetching {target.url!r} from {address} failed: {exc}") from None
        return pool, response
    raise FetchFailed(f"cannot connect to {target.url!r}: {'; '.join(errors)}")


@contextlib.contextmanager
def open_url(
    url: str,
    allow: AllowList = AllowList(),
    *,
    max_redirects: int = 5,
    timeout: float = 30.0,
    chunk_size: int = 8 * 1024 * 1024,
) -> Iterator[Download]:
    """Open `url` (following redirects by hand, each one checked) and stream its body."""
    current = url
    for hop in range(max_redirects + 1):
        what = "URL" if hop == 0 else "redirect to"
        target = _parse(current, what)
        addresses = _resolve(target, allow, what)
        pool, response = _request(target, addresses, timeout)
        try:
            status = response.status
            location = response.headers.get("Location")
            if status in REDIRECT_STATUSES and location:
                current = urllib.parse.urljoin(current, location.strip())
                continue
            if not 200 <= status < 300:
                raise FetchFailed(f"fetching {current!r} failed: HTTP status {status}")
            yield Download(current, response, chunk_size)
            return
        finally:
            response.close()
            pool.close()
    raise FetchFailed(f"fetching {url!r}: more than {max_redirects} redirects")
