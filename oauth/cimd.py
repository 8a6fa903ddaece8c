"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document; MCP authorization
2025-11-25): a `client_id` that is an https URL names a JSON document describing the client.

django-oauth-toolkit fetches, validates and stores it (`oauth2_provider.cimd`, turned on by
`CIMD_ENABLED` in settings): on first sight of the URL the authorization or token endpoint fetches
it and upserts a public `Application` with `registration_source="cimd"`; `cimd_expires_at` holds
the document's `Cache-Control: max-age` clamped to [CIMD_METADATA_MIN_AGE_SECONDS,
CIMD_METADATA_MAX_AGE_SECONDS], and a later request past it fetches again. A failed fetch is
backed off per URL (CIMD_FAILURE_BACKOFF_SECONDS) and DOT's flow then sees an unknown client.

`GatehouseMetadataFetcher` is DOT's documented extension point (`CIMD_METADATA_FETCHER`). DOT's
`SafeMetadataFetcher.fetch` resolves the host, refuses non-public addresses, connects to the
checked address (no DNS rebinding), follows no redirect and caps the body; this subclass keeps
that and adds:

- the reason of a refusal, recorded by URL (`refusal_for`) so the authorization endpoint shows
  it on Gatehouse's error page instead of DOT's "unknown client" (DOT swallows the error);
- the whole fetch — connect, headers and every body chunk — bounded by one deadline (a body
  dripped slowly is cut at CIMD_FETCH_TIMEOUT_SECONDS, not per read);
- the document's `client_id` equal to its URL and its redirect URIs held to the same rules as
  every other app's (`oauth.redirects`: https, or http on loopback only), checked here too so
  the refusal has its reason;
- two settings that exist only for the test suite: `GATEHOUSE_CIMD_ALLOW_LOOPBACK` (accept a
  loopback address, for a document served by a test server on 127.0.0.1) and
  `GATEHOUSE_CIMD_CA_FILE` (trust the test server's certificate authority). Both default off
  and are never read from the environment.

The fetch loop is DOT's, re-stated here because DOT's has no hook for the deadline per chunk,
the CA file or the loopback allowance.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import socket
import ssl
import time
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from django.core.cache import cache
from oauth2_provider import cimd as dot_cimd
from oauth2_provider.settings import oauth2_settings

from .redirects import LOOPBACK_HOSTS, redirect_uri_problem

log = logging.getLogger(__name__)

REFUSAL_CACHE_PREFIX = "oauth:cimd:refusal:"
CHUNK_BYTES = 4096


class MetadataRefusal(dot_cimd.CIMDError):
    """A metadata document refused, with a reason code and one sentence a user can read."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _refusal_key(client_id: str) -> str:
    return REFUSAL_CACHE_PREFIX + hashlib.sha256(client_id.encode("utf-8", "replace")).hexdigest()


def record_refusal(client_id: str, refusal: MetadataRefusal) -> None:
    """Remember why `client_id` was refused for as long as DOT backs the URL off (it will not
    fetch again before then, so the reason stays the one shown)."""
    try:
        cache.set(
            _refusal_key(client_id),
            {"reason": refusal.reason, "message": refusal.message},
            oauth2_settings.CIMD_FAILURE_BACKOFF_SECONDS,
        )
    except Exception:  # the cache is down: the page falls back to a generic reason
        log.warning("could not record a metadata document refusal", exc_info=True)


def refusal_for(client_id: str) -> dict[str, str] | None:
    """The recorded refusal of a metadata-document `client_id` (`reason`, `message`), or None."""
    try:
        value = cache.get(_refusal_key(client_id))
    except Exception:
        return None
    return value if isinstance(value, dict) else None


def _address_allowed(ip: str) -> bool:
    if dot_cimd._ip_is_public(ip):  # DOT's check, including IPv6 forms embedding an IPv4
        return True
    if settings.GATEHOUSE_CIMD_ALLOW_LOOPBACK:
        try:
            return ipaddress.ip_address(ip).is_loopback
        except ValueError:
            return False
    return False


def _resolve(hostname: str, port: int) -> list[str]:
    """Every address of `hostname`; refused if any of them is not public (a split answer must
    not smuggle in an internal one)."""
    try:
        infos = socket.getaddrinfo(hostname, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise MetadataRefusal("unresolvable", "Its host name does not resolve.") from None
    ips = [info[4][0] for info in infos]
    if not ips:
        raise MetadataRefusal("unresolvable", "Its host name does not resolve.")
    if not all(_address_allowed(ip) for ip in ips):
        raise MetadataRefusal(
            "private_address",
            "Its host resolves to a private, loopback or otherwise non-public address, which "
            "this server never contacts.",
        )
    return list(dict.fromkeys(ips))


def _ssl_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.GATEHOUSE_CIMD_CA_FILE:
        context.load_verify_locations(cafile=settings.GATEHOUSE_CIMD_CA_FILE)
    return context


class GatehouseMetadataFetcher(dot_cimd.SafeMetadataFetcher):
    """`fetch(client_id) -> (metadata, max_age_seconds)` or raises `MetadataRefusal` (a
    `CIMDError`), recording the reason. See the module docstring."""

    def fetch(self, client_id: str) -> tuple[dict, int]:
        try:
            metadata, max_age = self._fetch(client_id)
            self._check(client_id, metadata)
        except MetadataRefusal as refusal:
            record_refusal(client_id, refusal)
            log.info("metadata document refused (%s)", refusal.reason)
            raise
        return metadata, max_age

    def _fetch(self, client_id: str) -> tuple[dict, int]:
        try:
            parsed = dot_cimd._validate_client_id_url(client_id)
        except dot_cimd.CIMDError as exc:
            raise MetadataRefusal("invalid_url", f"Its URL is not valid: {exc}.") from None
        except ValueError:
            raise MetadataRefusal("invalid_url", "Its URL is not valid.") from None
        port = parsed.port or 443
        ips = _resolve(parsed.hostname, port)
        timeout = oauth2_settings.CIMD_FETCH_TIMEOUT_SECONDS
        deadline = time.monotonic() + timeout
        path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        headers = {"Host": parsed.netloc, "Accept": "application/json, application/*+json"}
        context = _ssl_context()
        failure: MetadataRefusal | None = None
        for ip in ips:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # Connect to the checked address; SNI, certificate and Host use the name.
            pool = urllib3.HTTPSConnectionPool(
                host=ip, port=port, retries=False, maxsize=1, ssl_context=context,
                server_hostname=parsed.hostname,
                timeout=urllib3.Timeout(connect=remaining, read=remaining, total=remaining),
            )
            try:
                response = pool.urlopen(
                    "GET", path, headers=headers, redirect=False, preload_content=False
                )
                try:
                    return self._read(response, deadline)
                finally:
                    response.release_conn()
            except urllib3.exceptions.TimeoutError:
                failure = MetadataRefusal(
                    "timeout", f"It did not answer within {timeout:g} seconds."
                )
            except urllib3.exceptions.HTTPError as exc:
                failure = MetadataRefusal(
                    "unreachable", f"It could not be fetched ({type(exc).__name__})."
                )
            finally:
                pool.close()
        if time.monotonic() >= deadline:
            failure = MetadataRefusal("timeout", f"It did not answer within {timeout:g} seconds.")
        raise failure or MetadataRefusal("unreachable", "It could not be fetched.")

    def _read(self, response: urllib3.BaseHTTPResponse, deadline: float) -> tuple[dict, int]:
        if 300 <= response.status < 400:
            raise MetadataRefusal(
                "redirect",
                f"It answered with a redirect (HTTP {response.status}); metadata documents must "
                "be served at their URL, and redirects are not followed.",
            )
        if response.status != 200:
            raise MetadataRefusal("http_status", f"It answered HTTP {response.status}.")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media_type != "application/json" and not (
            media_type.startswith("application/") and media_type.endswith("+json")
        ):
            raise MetadataRefusal("not_json", "It is not served as application/json.")
        max_size = oauth2_settings.CIMD_MAX_DOCUMENT_SIZE
        body = bytearray()
        while len(body) <= max_size:
            if time.monotonic() >= deadline:
                raise urllib3.exceptions.ReadTimeoutError(None, None, "deadline")
            chunk = response.read1(CHUNK_BYTES)  # one recv at most: the deadline holds
            if not chunk:
                break
            body += chunk
        if len(body) > max_size:
            raise MetadataRefusal(
                "too_large", f"It is larger than the {max_size} bytes this server accepts."
            )
        try:
            data = json.loads(bytes(body))
        except (ValueError, RecursionError):
            raise MetadataRefusal("not_json", "It is not valid JSON.") from None
        if not isinstance(data, dict):
            raise MetadataRefusal("not_json", "It is not a JSON object.")
        return data, dot_cimd._effective_max_age(response.headers.get("Cache-Control"))

    def _check(self, client_id: str, metadata: dict) -> None:
        if metadata.get("client_id") != client_id:
            raise MetadataRefusal(
                "client_id_mismatch",
                "The document's client_id is not the URL it was fetched from.",
            )
        uris = metadata.get("redirect_uris")
        if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
            raise MetadataRefusal(
                "invalid_metadata", "Its redirect_uris must be a non-empty array of strings."
            )
        for uri in uris:
            problem = redirect_uri_problem(uri)
            if problem is not None:
                raise MetadataRefusal("invalid_redirect_uri", problem)
        name = metadata.get("client_name", "")
        if not isinstance(name, str) or len(name) > 100 or any(
            ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name
        ):
            raise MetadataRefusal(
                "invalid_metadata", "Its client_name must be at most 100 printable characters."
            )
        try:  # lone surrogates cannot be stored
            json.dumps(metadata, ensure_ascii=False).encode("utf-8")
        except (UnicodeEncodeError, ValueError, RecursionError):
            raise MetadataRefusal("invalid_metadata", "It is not valid Unicode text.") from None


def client_host(client_id: str) -> str:
    """The host (and port) a metadata-document client is named by, as the consent screen shows."""
    try:
        return urlsplit(client_id).netloc[:255]
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return "an invalid address"


def all_redirects_on_loopback(redirect_uris: list[str]) -> bool:
    """MCP 2025-11-25 (Client ID Metadata Documents): warn the user when every redirect URI is on
    localhost — anyone can publish a document naming a loopback callback."""
    hosts = []
    for uri in redirect_uris:
        try:
            hosts.append((urlsplit(uri).hostname or "").lower())
        except ValueError:
            return False
    return bool(hosts) and all(host in LOOPBACK_HOSTS for host in hosts)
