"""Which redirect URIs an OAuth app may register (RFC 6749 §3.1.2, RFC 8252 §7.3, RFC 9700 §2.1),
and which apps the authorization endpoint sends back to without asking (RFC 9700 §4.11.2).

`https` anywhere; `http` only to a loopback host (127.0.0.1, [::1], localhost), which native apps
and MCP clients use for their callback. That is the promise behind silencing
`oauth2_provider.W008` in settings: DOT is configured to allow the `http` scheme, and this module
refuses it for every other host — at registration (dashboard, RFC 7591, admin) and again at the
authorization endpoint (`GatehouseOAuth2Validator.validate_redirect_uri`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from oauth2_provider.models import AbstractApplication

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
MAX_REDIRECT_URIS = 10
MAX_URI_LENGTH = 2000


def redirect_uri_problem(uri: str) -> str | None:
    """Why `uri` cannot be a redirect URI, in one sentence; None when it can."""
    if not isinstance(uri, str) or not uri:
        return "A redirect URI must be a non-empty string."
    if len(uri) > MAX_URI_LENGTH:
        return f"A redirect URI must be at most {MAX_URI_LENGTH} characters."
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in uri):
        return "A redirect URI must not contain spaces or control characters."
    if "#" in uri:
        return "A redirect URI must not contain a fragment (RFC 6749 §3.1.2)."
    try:
        parts = urlsplit(uri)
        port = parts.port  # noqa: F841 — raises ValueError for a malformed port
    except ValueError:
        return "A redirect URI must be a valid absolute URL."
    scheme = parts.scheme.lower()
    if scheme not in {"https", "http"}:
        return "A redirect URI must use https (or http on a loopback address)."
    host = parts.hostname
    if not host or parts.netloc.startswith(":"):
        return "A redirect URI must be an absolute URL with a host."
    if "@" in parts.netloc:
        return "A redirect URI must not contain user credentials."
    if "*" in host:
        return "A redirect URI must not contain wildcards."
    if scheme == "http" and host.lower() not in LOOPBACK_HOSTS:
        return (
            "http redirect URIs are only allowed for loopback addresses "
            "(127.0.0.1, [::1], localhost); use https."
        )
    return None


def validate_redirect_uris(uris: list[str]) -> list[str]:
    """The URIs, de-duplicated in order; ValidationError naming the first bad one otherwise."""
    if not uris:
        raise ValidationError("Register at least one redirect URI.")
    unique = list(dict.fromkeys(uris))
    if len(unique) > MAX_REDIRECT_URIS:
        raise ValidationError(f"Register at most {MAX_REDIRECT_URIS} redirect URIs.")
    for uri in unique:
        problem = redirect_uri_problem(uri)
        if problem is not None:
            shown = uri if isinstance(uri, str) and len(uri) <= 100 else f"{str(uri)[:100]}…"
            raise ValidationError(f"{problem} ({shown})")
    return unique


def redirects_without_asking(application: AbstractApplication | None) -> bool:
    """Whether an error response may redirect the user to `application` automatically.

    RFC 9700 §4.11.2: an authorization server that lets anyone register a client (RFC 7591, a
    Client ID Metadata Document) must not become an open redirector — an attacker registers
    `https://evil.example/` and sends victims a request made to fail (an unknown scope), and the
    server's own URL bounces them there. Only an app a workspace registered from its dashboard
    (or staff in Django admin) is vetted; for any other app, or an app that cannot be found, the
    endpoint shows its own page naming the destination, and the user follows the link or not.
    """
    return (
        application is not None
        and application.registration_source == AbstractApplication.RegistrationSource.MANUAL
    )
