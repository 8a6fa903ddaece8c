"""API key tokens (SPEC §3): `gk_<env>_<30 base62><6 base62 CRC32 checksum>`.

Everything here is pure: no I/O, no database. `parse_token` rejects a mistyped, truncated or
forged token before the gateway spends a query on it; `token_digest` is the only form a token is
ever stored in.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from django.conf import settings

from core.credentials import CHECKSUM_LENGTH, checksum
from core.ids import random_base62

ENVIRONMENT_PREFIXES = {"production": "prod", "staging": "stg", "development": "dev"}
PREFIX_ENVIRONMENTS = {prefix: env for env, prefix in ENVIRONMENT_PREFIXES.items()}
RANDOM_LENGTH = 30
HINT_LENGTH = 4
TOKEN_PATTERN = re.compile(r"gk_(prod|stg|dev)_([0-9A-Za-z]{30})([0-9A-Za-z]{6})")
# The longest token is gk_prod_ + 36; anything longer is rejected before the regex runs.
MAX_TOKEN_LENGTH = len("gk_prod_") + RANDOM_LENGTH + CHECKSUM_LENGTH


@dataclass(frozen=True, slots=True)
class ParsedToken:
    token: str
    environment: str  # production | staging | development


def generate_token(environment: str) -> str:
    body = f"gk_{ENVIRONMENT_PREFIXES[environment]}_{random_base62(RANDOM_LENGTH)}"
    return body + checksum(body)


def parse_token(token: str) -> ParsedToken | None:
    """The token's environment when its shape and checksum are right, else None. No I/O."""
    if len(token) > MAX_TOKEN_LENGTH:
        return None
    match = TOKEN_PATTERN.fullmatch(token)
    if match is None:
        return None
    body = token[:-CHECKSUM_LENGTH]
    if not hmac.compare_digest(checksum(body), match.group(3)):
        return None
    return ParsedToken(token=token, environment=PREFIX_ENVIRONMENTS[match.group(1)])


def token_digest(token: str) -> str:
    """HMAC-SHA256(pepper, token), hex: the stored lookup key. A database leak yields no tokens,
    and without the pepper the digests cannot be brute-forced offline."""
    return hmac.new(
        settings.GATEHOUSE_KEY_PEPPER.encode(), token.encode(), hashlib.sha256
    ).hexdigest()


def token_hint(token: str) -> str:
    return token[-HINT_LENGTH:]


def display_hint(environment: str, hint: str) -> str:
    """`gk_prod_…abcd`: enough to recognise a key, nothing to use."""
    return f"gk_{ENVIRONMENT_PREFIXES[environment]}_…{hint}"
