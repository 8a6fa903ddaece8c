"""Leaked credentials: strings found in the wild, reported to `POST /api/v1/leaked-credentials`
(like GitHub's credential-revocation API), revoked at once when they are live.

A reporter learns nothing: the endpoint answers the same 202 whatever was sent, and the work done
is the same three indexed lookups for any batch (every string of a Gatehouse shape is looked up,
live or not); only a live credential adds its revocation. What is revoked:

- a live API key (`active` or `paused`, not expired): `apikey_revoke` with reason `leaked`,
  recorded as `key.revoked`;
- a live OAuth access token or refresh token: its whole grant (`connection_revoke`, every token
  of it), recorded as `oauth.token_revoked` with reason `leaked`. Whoever holds one token of a
  grant may hold the others; as with refresh-token reuse, the grant ends.

Each revocation writes its audit event (with the reporter's IP and the `url` where the string was
found) and a `SecurityAlert` that shows a banner on the workspace's dashboard until an admin
acknowledges it, in one transaction. The `url` is the reporter's free text: it is stored as one
line (whitespace runs become one space, control and format characters such as NUL or bidi
overrides are removed, credential shapes redacted), at most `MAX_URL_LENGTH` characters in the
audit event and `BANNER_URL_LENGTH` on the banner; the template escapes it as any other text.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_refresh_token_model

from apikeys.models import ApiKey, KeyStatus
from apikeys.services import apikey_revoke
from apikeys.tokens import parse_token, token_digest
from core.context import Actor, RequestContext
from core.redaction import redact
from oauth import tokens as oauth_tokens
from oauth.models import Connection, IssuedAccessToken
from workspaces.models import SecurityAlert, Workspace

MAX_CREDENTIALS = 1000
REPORTS_PER_MINUTE = 30  # per client IP (IPv6: per /64)
MAX_CREDENTIAL_LENGTH = 512
MAX_URL_LENGTH = 500
BANNER_URL_LENGTH = 120  # one short line on the dashboard banner
REPORTER = Actor.system("leaked-credentials report")


def _checksum(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _classify(credentials: Iterable[str]) -> tuple[set[str], set[str], set[str]]:
    """Digests of API keys, checksums of access and refresh tokens: shape and checksum only,
    no I/O; anything else is not a Gatehouse credential and is ignored."""
    keys, access, refresh = set(), set(), set()
    for raw in credentials:
        value = raw.strip()
        if parse_token(value) is not None:
            keys.add(token_digest(value))
        elif oauth_tokens.is_well_formed(value, oauth_tokens.ACCESS_TOKEN_PREFIX):
            access.add(_checksum(value))
        elif oauth_tokens.is_well_formed(value, oauth_tokens.REFRESH_TOKEN_PREFIX):
            refresh.add(_checksum(value))
    return keys, access, refresh


def one_line(text: str, limit: int) -> str:
    """The reporter's text as one line of at most `limit` characters (`…` when cut): whitespace
    runs (newlines included) become one space; control, format, surrogate and private-use
    characters are removed; anything shaped like a credential is redacted."""
    text = " ".join(text.split())
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("C"))
    text = redact(text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _alert(workspace: Workspace, subject: str, metadata: dict[str, Any]) -> None:
    SecurityAlert.objects.create(
        workspace=workspace,
        kind=SecurityAlert.Kind.CREDENTIAL_LEAKED,
        subject=subject[:200],
        reporter_ip=metadata["reporter_ip"],
        url=one_line(metadata["url"], BANNER_URL_LENGTH),
    )


def _add_live_connections(connections: dict[int, Connection], tokens: QuerySet) -> None:
    """The live connections the DOT tokens in `tokens` belong to, added by primary key."""
    for token in tokens.select_related("gatehouse_link__connection__workspace", "application"):
        connection = getattr(getattr(token, "gatehouse_link", None), "connection", None)
        if connection is not None and connection.revoked_at is None:
            connections[connection.pk] = connection


def leaked_credentials_known(credentials: list[str]) -> set[str]:
    """Which of `credentials` (stripped) Gatehouse issued, live or not: for the feedback of a
    verified secret-scanning report only (`gateway.secret_scanning`), never for an anonymous one.
    One indexed query per kind, as the revocation."""
    by_digest: dict[str, str] = {}
    keys, access, refresh = set(), set(), set()
    for raw in credentials[:MAX_CREDENTIALS]:
        value = raw.strip()
        found_keys, found_access, found_refresh = _classify([value])
        for digest in found_keys | found_access | found_refresh:
            by_digest[digest] = value
        keys |= found_keys
        access |= found_access
        refresh |= found_refresh
    issued: set[str] = set()
    if keys:
        issued |= set(ApiKey.objects.filter(digest__in=keys).values_list("digest", flat=True))
    if access:
        issued |= set(IssuedAccessToken.objects.filter(token_checksum__in=access)
                      .values_list("token_checksum", flat=True))
    if refresh:
        issued |= set(get_refresh_token_model().objects.filter(token_checksum__in=refresh)
                      .values_list("token_checksum", flat=True))
    return {by_digest[digest] for digest in issued}


def leaked_credentials_revoke(
    *, credentials: list[str], url: str = "", context: RequestContext,
    reporter: Actor = REPORTER, report: dict[str, str] | None = None,
) -> int:
    """Revoke every live credential among `credentials`; returns how many were revoked (for the
    caller's logs and tests only: never tell the reporter). `reporter` and `report` (plain,
    non-secret facts such as a verified scanner's `source`) go into each audit event; both
    revocation services are the same as for any revocation, so whatever they notify follows."""
    from oauth.services import connection_revoke

    keys, access, refresh = _classify(credentials[:MAX_CREDENTIALS])
    # The URL is the reporter's text: it could itself carry a token, never stored (SPEC §3).
    metadata = {"reporter_ip": context.ip, "url": one_line(url, MAX_URL_LENGTH)}
    for name, value in (report or {}).items():
        metadata[name] = one_line(value, MAX_URL_LENGTH)
    now = timezone.now()
    live_keys = [
        key for key in ApiKey.objects.filter(digest__in=keys).select_related("workspace")
        if key.effective_status(now) in (KeyStatus.ACTIVE, KeyStatus.PAUSED)
    ] if keys else []
    connections: dict[int, Connection] = {}
    if access:
        _add_live_connections(connections, get_access_token_model().objects.filter(
            token_checksum__in=access, expires__gt=now
        ))
    if refresh:
        _add_live_connections(connections, get_refresh_token_model().objects.filter(
            token_checksum__in=refresh, revoked__isnull=True
        ))

    revoked = 0
    for key in live_keys:
        try:
            with transaction.atomic():
                apikey_revoke(key=key, actor=reporter, context=context, reason="leaked",
                              metadata=metadata)
                _alert(key.workspace, f"API key {key.name} ({key.display_hint})", metadata)
        except ValidationError:  # revoked (or expired) since it was read: nothing left to do
            continue
        revoked += 1
    for connection in connections.values():
        with transaction.atomic():
            ended = connection_revoke(connection=connection, actor=reporter, context=context,
                                      reason="leaked", metadata=metadata)
            if ended.revoked_at is not None and ended.revoked_at < now:
                continue  # revoked concurrently, before this report: no alert of ours
            app = connection.application.name or connection.application.client_id
            _alert(connection.workspace, f"OAuth access of {app} ({connection.public_id})",
                   metadata)
        revoked += 1
    return revoked
