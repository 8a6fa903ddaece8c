"""The audit log's HMAC keys, which live in the environment and never in the database.

`GATEHOUSE_AUDIT_KEY` signs every new event and every chain head; the keys in
`GATEHOUSE_AUDIT_KEYS_OLD` (and those derived from `SECRET_KEY_FALLBACKS`) still verify what they
signed, so rotating the key leaves older events verifiable (docs/audit-log.md, "Rotating the key").
Each event records the *id* of its key — a fingerprint, never the key — so a key change is written
in the chain itself and verification knows which key to try.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

KEY_ID_LENGTH = 16
_KEY_ID_MESSAGE = b"gatehouse audit key id"


@dataclass(frozen=True, slots=True)
class AuditKey:
    id: str
    secret: bytes = b""

    def mac(self, message: bytes) -> str:
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()


def derive_audit_key(secret_key: str) -> str:
    """The default audit key for a SECRET_KEY: derived from it, never equal to it."""
    return hashlib.sha256(b"gatehouse-audit-key:" + secret_key.encode()).hexdigest()


def audit_key_id(secret: str) -> str:
    """A key's public fingerprint: an HMAC of a constant, so it reveals nothing of the key."""
    return hmac.new(secret.encode(), _KEY_ID_MESSAGE, hashlib.sha256).hexdigest()[:KEY_ID_LENGTH]


@lru_cache(maxsize=8)
def _keyring(
    current: str, old: tuple[str, ...], fallbacks: tuple[str, ...]
) -> tuple[AuditKey, dict[str, AuditKey]]:
    signing = AuditKey(audit_key_id(current), current.encode())
    ring = {signing.id: signing}
    # A SECRET_KEY rotated with Django's fallbacks keeps its derived audit key verifying.
    for secret in [*old, *(derive_audit_key(f) for f in fallbacks)]:
        key = AuditKey(audit_key_id(secret), secret.encode())
        ring.setdefault(key.id, key)
    return signing, ring


def _settings_keyring() -> tuple[AuditKey, dict[str, AuditKey]]:
    return _keyring(
        settings.GATEHOUSE_AUDIT_KEY,
        tuple(s for s in getattr(settings, "GATEHOUSE_AUDIT_KEYS_OLD", ()) if s),
        tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ())),
    )


def signing_key() -> AuditKey:
    """The key new events and chain heads are signed with."""
    return _settings_keyring()[0]


def verification_key(key_id: str) -> AuditKey | None:
    """The configured key with this id (current or old), or None when it is not configured."""
    return _settings_keyring()[1].get(key_id)
