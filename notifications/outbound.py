"""Outbound HTTP for webhooks, safe against SSRF (SPEC §13).

A webhook URL is the workspace admin's text, and the server sends requests to it: it must never
reach the server's own network. So:

- only `https` (or `http` to a loopback address when `GATEHOUSE_WEBHOOK_ALLOW_LOOPBACK`, on by
  default in development only);
- the host name is resolved here and *every* address must be public (`is_global`; an IPv6 form
  embedding an IPv4 one is judged by the IPv4) — private, link-local (cloud metadata), shared,
  multicast and reserved addresses are refused, loopback too unless allowed;
- the request connects to the address that was checked (no second lookup, no DNS rebinding);
  SNI, the certificate and `Host` use the name;
- no redirect is followed (a 3xx is a failed delivery);
- the whole request — connect, send, headers and body — is bounded by one deadline
  (`GATEHOUSE_WEBHOOK_TIMEOUT_SECONDS`, 10 s), and at most `GATEHOUSE_WEBHOOK_RESPONSE_LIMIT`
  bytes of the answer are read (a 1 GB answer is cut, the connection dropped).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from django.conf import settings

MAX_URL_LENGTH = 2000
CHUNK_BYTES = 8192


class UrlRefused(ValueError):
    """A webhook URL that may not be used, with one sentence a user can read."""


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    netloc: str
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Response:
    status: int | None
    latency_ms: int
    body: bytes = b""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _address_allowed(ip: str) -> bool:
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo:
            embedded = address.teredo[1]
        if embedded is not None:
            address = embedded
    if address.is_loopback:
        return bool(settings.GATEHOUSE_WEBHOOK_ALLOW_LOOPBACK)
    return address.is_global and not address.is_multicast


def _is_loopback_name(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_url(url: str) -> tuple[str, str, int, str, str]:
    """(scheme, host, port, path, netloc) of an acceptable URL, or `UrlRefused`. No lookup."""
    if not isinstance(url, str) or not url.strip():
        raise UrlRefused("Enter the endpoint's URL.")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    if any(ord(c) < 0x21 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in url):
        raise UrlRefused("The URL contains spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlRefused("The URL is not valid.") from None
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme not in {"https", "http"} or not host:
        raise UrlRefused("The URL must start with https:// and name a host.")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("The URL must not contain a user name or password.")
    if parts.fragment:
        raise UrlRefused("The URL must not contain a #fragment.")
    if parts.scheme == "http" and not (
        settings.GATEHOUSE_WEBHOOK_ALLOW_LOOPBACK and _is_loopback_name(host)
    ):
        raise UrlRefused(
            "The URL must use https:// (plain http is accepted only for a loopback address in "
            "development)."
        )
    try:
        host.encode("idna")
    except UnicodeError:
        raise UrlRefused("The URL's host name is not valid.") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default_port = 443 if parts.scheme == "https" else 80
    return parts.scheme, host, port or default_port, path, parts.netloc


def resolve(url: str) -> Target:
    """Check `url` and resolve its host; every address must be allowed. `UrlRefused` if not."""
    scheme, host, port, path, netloc = parse_url(url)
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError):
        raise UrlRefused("The URL's host name does not resolve.") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise UrlRefused("The URL's host name does not resolve.")
    if not all(_address_allowed(ip) for ip in addresses):
        raise UrlRefused(
            "The URL resolves to a private, loopback or otherwise non-public address, which "
            "Gatehouse never sends to."
        )
    return Target(scheme, host, port, path, netloc, addresses)


def _ssl_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.GATEHOUSE_WEBHOOK_CA_FILE:
        context.load_verify_locations(cafile=settings.GATEHOUSE_WEBHOOK_CA_FILE)
    return context


def post(url: str, *, body: bytes, headers: dict[str, str]) -> Response:
    """POST `body` to `url` under the rules above; never raises for the receiver's behaviour."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        target = resolve(url)
    except UrlRefused as exc:
        return Response(None, elapsed(), error=f"refused: {exc}")
    timeout = float(settings.GATEHOUSE_WEBHOOK_TIMEOUT_SECONDS)
    deadline = started + timeout
    limit = int(settings.GATEHOUSE_WEBHOOK_RESPONSE_LIMIT)
    error = "unreachable"
    for ip in target.addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        bound = urllib3.Timeout(connect=remaining, read=remaining)
        if target.scheme == "https":
            pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
                host=ip, port=target.port, retries=False, maxsize=1, timeout=bound,
                ssl_context=_ssl_context(), server_hostname=target.host,
                assert_hostname=target.host,
            )
        else:
            pool = urllib3.HTTPConnectionPool(
                host=ip, port=target.port, retries=False, maxsize=1, timeout=bound
            )
        try:
            response = pool.urlopen(
                "POST", target.path, body=body,
                headers={**headers, "Host": target.netloc}, redirect=False,
                preload_content=False, assert_same_host=False,
            )
            try:
                received = bytearray()
                while len(received) < limit:
                    if time.monotonic() >= deadline:
                        return Response(None, elapsed(), bytes(received),
                                        error=f"timeout: no full answer within {timeout:g} s")
                    chunk = response.read1(CHUNK_BYTES)
                    if not chunk:
                        break
                    received += chunk
                return Response(response.status, elapsed(), bytes(received[:limit]))
            finally:
                # Whatever was not read is dropped with the connection, never drained.
                response.close()
        except urllib3.exceptions.TimeoutError:
            error = f"timeout: no answer within {timeout:g} s"
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            error = f"unreachable: {type(exc).__name__}"
        finally:
            pool.close()
    if time.monotonic() >= deadline:
        error = f"timeout: no answer within {timeout:g} s"
    return Response(None, elapsed(), error=error)
