"""`Idempotency-Key` on POST, PATCH and DELETE (SPEC §6, draft-ietf-httpapi-idempotency-key-header).

The record is claimed (a unique row per workspace + key) before the view runs, so a concurrent
duplicate finds it and gets 409 `idempotency_key_in_use`; the first completed response
(status < 500) is stored for 24 hours and replayed byte for byte with `Idempotent-Replayed: true`;
a different method, path, content type or body under the same key gets 422. A claim is released
when the view raises or answers 5xx or 429 (nothing was done, the client may retry with the same
key). A claim left behind by a crashed worker can be taken over after `IN_FLIGHT_LEASE`.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse

from core.credentials import CREDENTIAL_PATTERN_BYTES

from .models import IdempotencyRecord, IdempotencyStatus

HEADER = "Idempotency-Key"
METHODS = frozenset({"POST", "PATCH", "DELETE"})
MAX_KEY_LENGTH = 255
RETENTION = timedelta(hours=24)
IN_FLIGHT_LEASE = timedelta(seconds=60)
_KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII, no spaces
# Response headers worth replaying; hop-by-hop and per-response headers are set afresh.
_REPLAYED_HEADERS = ("Content-Type", "Location", "Allow")
_SECRET_PATTERN = CREDENTIAL_PATTERN_BYTES

REUSED_MESSAGE = (
    "Idempotency-Key has already been used with a different request body. "
    "Use a new key for the new request, or reuse the original body."
)


class IdempotencyError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def idempotency_key_from(request: HttpRequest) -> str | None:
    """The request's key when it applies (None otherwise); 400 for a malformed one."""
    if request.method not in METHODS:
        return None
    raw = request.META.get("HTTP_IDEMPOTENCY_KEY")
    if raw is None:
        return None
    if not _KEY_PATTERN.fullmatch(raw):
        raise IdempotencyError(
            400,
            "invalid_request",
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} visible ASCII characters.",
        )
    return raw


def request_fingerprint(request: HttpRequest) -> str:
    digest = hashlib.sha256()
    for part in (
        request.method or "",
        request.get_full_path(),
        request.META.get("CONTENT_TYPE", ""),
    ):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    digest.update(request.body)
    return digest.hexdigest()


def idempotency_claim(
    *, workspace_id: int, key: str, fingerprint: str, now: datetime
) -> IdempotencyRecord | HttpResponse:
    """Claim `key` for this request, or answer for it: a replay, or 409/422 (IdempotencyError)."""
    for _attempt in range(3):
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    workspace_id=workspace_id,
                    key=key,
                    fingerprint=fingerprint,
                    status=IdempotencyStatus.IN_FLIGHT,
                    locked_until=now + IN_FLIGHT_LEASE,
                    created_at=now,
                    expires_at=now + RETENTION,
                )
            return record
        except IntegrityError:
            pass
        existing = IdempotencyRecord.objects.filter(workspace_id=workspace_id, key=key).first()
        if existing is None:
            continue  # released between our insert and our read: try again
        stale_claim = (
            existing.status == IdempotencyStatus.IN_FLIGHT and existing.locked_until <= now
        )
        if existing.expires_at <= now or stale_claim:
            # Expired, or abandoned by a crashed worker: delete exactly that row and claim anew.
            IdempotencyRecord.objects.filter(pk=existing.pk, status=existing.status).filter(
                locked_until=existing.locked_until
            ).delete()
            continue
        if existing.fingerprint != fingerprint:
            raise IdempotencyError(422, "idempotency_key_reused", REUSED_MESSAGE)
        if existing.status == IdempotencyStatus.IN_FLIGHT:
            raise IdempotencyError(
                409,
                "idempotency_key_in_use",
                "A request with this Idempotency-Key is still being processed. "
                "Retry after it completes.",
            )
        return _replay(existing)
    raise IdempotencyError(
        409, "idempotency_key_in_use", "This Idempotency-Key is contended. Retry shortly."
    )


def _replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(bytes(record.response_body), status=record.response_status)
    for name, value in record.response_headers.items():
        response[name] = value
    response["Idempotent-Replayed"] = "true"
    return response


def idempotency_storable(response: HttpResponse) -> bool:
    """Whether `response` is kept for replays (else the claim is released)."""
    return not (response.status_code >= 500 or response.status_code == 429 or response.streaming)


def idempotency_complete(claim: IdempotencyRecord, response: HttpResponse) -> None:
    """Store the response to replay, or release the claim if it should not be kept."""
    if not idempotency_storable(response):
        idempotency_release(claim)
        return
    body = _SECRET_PATTERN.sub(rb"\1[REDACTED]", response.content)
    headers = {name: response[name] for name in _REPLAYED_HEADERS if response.has_header(name)}
    IdempotencyRecord.objects.filter(pk=claim.pk).update(
        status=IdempotencyStatus.COMPLETED,
        response_status=response.status_code,
        response_headers=headers,
        response_body=body,
    )


def idempotency_release(claim: IdempotencyRecord) -> None:
    IdempotencyRecord.objects.filter(pk=claim.pk, status=IdempotencyStatus.IN_FLIGHT).delete()


def idempotency_prune(now: datetime) -> int:
    deleted, _ = IdempotencyRecord.objects.filter(expires_at__lte=now).delete()
    return deleted
