"""Secrets the server must read back later (webhook signing secrets), sealed at rest.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) under a key derived from
`GATEHOUSE_SEALING_KEY` and a purpose, so a database dump alone reveals no secret and a sealed
value of one purpose does not open as another. Changing the setting makes every sealed value
unreadable (webhook endpoints then need a new secret), so production sets it explicitly.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


class SealBroken(Exception):
    """The sealed value was altered, or sealed under another key or purpose."""


def _fernet(purpose: str) -> Fernet:
    digest = hashlib.sha256(
        b"gatehouse-seal:" + purpose.encode() + b":" + settings.GATEHOUSE_SEALING_KEY.encode()
    ).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(plaintext: str, *, purpose: str) -> str:
    return _fernet(purpose).encrypt(plaintext.encode()).decode()


def unseal(sealed: str, *, purpose: str) -> str:
    try:
        return _fernet(purpose).decrypt(sealed.encode()).decode()
    except (InvalidToken, ValueError) as exc:
        raise SealBroken("the sealed value cannot be opened") from exc
