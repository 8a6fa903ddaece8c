"""Leak reports in GitHub's secret-scanning partner format (issue 18; SPEC §13).

GitHub POSTs `[{"token": "…", "type": "…", "url": "…", "source": "…"}, …]` to
`/api/v1/leaked-credentials` with two headers: `Github-Public-Key-Identifier` (which of GitHub's
published keys signed it) and `Github-Public-Key-Signature` (base64 of an ASN.1 DER ECDSA
signature, P-256 with SHA-256, over the raw body). The keys are configured, not fetched:
`GATEHOUSE_GITHUB_SCANNING_KEYS` maps each key identifier to its PEM public key (GitHub
publishes them at https://api.github.com/meta/public_keys/secret_scanning).

A report whose signature verifies against a configured key gets GitHub's feedback answer, one
entry per match: `{"token_hash": sha256 hex of the token, "token_type", "label":
"true_positive" | "false_positive"}`. Anything else — no headers, an unknown identifier, a
malformed or wrong signature, a key that is not P-256 — is handled exactly as an anonymous report
(revoked if live, the same 202 whatever was sent): a signature can only add the feedback, never
take away a revocation nor reveal anything to an unverified sender.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from dataclasses import dataclass
from functools import cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.conf import settings

log = logging.getLogger(__name__)

KEY_ID_HEADER = "Github-Public-Key-Identifier"
SIGNATURE_HEADER = "Github-Public-Key-Signature"
MAX_HEADER_LENGTH = 1024
MAX_FIELD_LENGTH = 500  # `type`, `url`, `source`


@dataclass(frozen=True)
class Match:
    """One entry of GitHub's report."""

    token: str
    type: str
    url: str
    source: str


@cache
def _public_key(key_id: str, pem: str) -> ec.EllipticCurvePublicKey | None:
    try:
        key = load_pem_public_key(pem.encode("ascii"))
    except (ValueError, TypeError, UnicodeError):
        log.warning("GATEHOUSE_GITHUB_SCANNING_KEYS: key %r is not a PEM public key", key_id[:64])
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        log.warning("GATEHOUSE_GITHUB_SCANNING_KEYS: key %r is not a P-256 key", key_id[:64])
        return None
    return key


def signature_verified(body: bytes, key_id: str | None, signature: str | None) -> bool:
    """Whether `signature` (base64 DER) is a valid ECDSA P-256/SHA-256 signature of `body` by the
    configured key `key_id`. False for anything missing, unknown or malformed; never raises."""
    if not key_id or not signature:
        return False
    if len(key_id) > MAX_HEADER_LENGTH or len(signature) > MAX_HEADER_LENGTH:
        return False
    keys: dict[str, str] = settings.GATEHOUSE_GITHUB_SCANNING_KEYS
    pem = keys.get(key_id)
    if not isinstance(pem, str):
        return False
    key = _public_key(key_id, pem)
    if key is None:
        return False
    try:
        der = base64.b64decode(signature.strip(), validate=True)
        key.verify(der, body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def is_github_report(data: Any) -> bool:
    """A JSON array whose items are objects: GitHub's shape (today's plain format is strings)."""
    return isinstance(data, list) and bool(data) and all(isinstance(item, dict) for item in data)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def feedback(matches: list[Match], known: set[str]) -> list[dict[str, str]]:
    """GitHub's feedback body: each reported token, by its SHA-256, labelled by whether it is a
    credential Gatehouse issued (live or not)."""
    return [
        {
            "token_hash": token_hash(match.token),
            "token_type": match.type,
            "label": "true_positive" if match.token.strip() in known else "false_positive",
        }
        for match in matches
    ]
