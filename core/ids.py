"""Public identifiers (`key_…`, `psp_…`, `evt_…`): prefixed, random, URL-safe, never sequential."""

import secrets

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def random_base62(length: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(length))


def new_public_id(prefix: str) -> str:
    """`<prefix>_` + 22 base62 characters (~131 bits): unguessable, so ids leak nothing."""
    return f"{prefix}_{random_base62(22)}"
