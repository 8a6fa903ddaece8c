"""OAuth token formats: access tokens `gat_…`, refresh tokens `grt_…` (SPEC §7).

`<prefix><40 base62 random><6 base62 CRC32 checksum>`, the same shape discipline as API keys: a
mistyped, truncated or tampered token is rejected without a database query. django-oauth-toolkit
stores only SHA-256 checksums of them (COMPLIANT_BCP_RFC9700_TOKEN_STORAGE); the raw value exists
only in the token response.

The other secrets of the flow get recognisable shapes too, so that log redaction
(`core.redaction`) and secret scanners find them wherever they surface: client secrets
`gcs_<60 base62><6 checksum>` (stored hashed by DOT) and authorization codes
`gac_<40 base62><6 checksum>` (single use, 60 seconds, useless without the PKCE verifier).
"""

from __future__ import annotations

import hmac
import re

from core.credentials import checksum
from core.ids import random_base62

ACCESS_TOKEN_PREFIX = "gat_"
REFRESH_TOKEN_PREFIX = "grt_"
AUTHORIZATION_CODE_PREFIX = "gac_"
CLIENT_SECRET_PREFIX = "gcs_"
CLIENT_SECRET_RANDOM_LENGTH = 60
RANDOM_LENGTH = 40
CHECKSUM_LENGTH = 6
TOKEN_LENGTH = 4 + RANDOM_LENGTH + CHECKSUM_LENGTH
_SHAPE = re.compile(r"(gat_|grt_)[0-9A-Za-z]{46}")


def _generate(prefix: str, length: int = RANDOM_LENGTH) -> str:
    body = prefix + random_base62(length)
    return body + checksum(body)


def generate_access_token(request: object = None) -> str:
    """oauthlib token generator (OAUTH2_PROVIDER["ACCESS_TOKEN_GENERATOR"])."""
    return _generate(ACCESS_TOKEN_PREFIX)


def generate_refresh_token(request: object = None) -> str:
    """oauthlib token generator (OAUTH2_PROVIDER["REFRESH_TOKEN_GENERATOR"])."""
    return _generate(REFRESH_TOKEN_PREFIX)


def is_well_formed(token: str, prefix: str) -> bool:
    """Shape and checksum are right for a token starting with `prefix`. No I/O."""
    if len(token) != TOKEN_LENGTH or not token.startswith(prefix):
        return False
    if _SHAPE.fullmatch(token) is None:
        return False
    body, check = token[:-CHECKSUM_LENGTH], token[-CHECKSUM_LENGTH:]
    return hmac.compare_digest(checksum(body), check)


def generate_authorization_code() -> str:
    return _generate(AUTHORIZATION_CODE_PREFIX)


class ClientSecretGenerator:
    """DOT's client secret generator (OAUTH2_PROVIDER["CLIENT_SECRET_GENERATOR_CLASS"])."""

    def hash(self) -> str:
        return _generate(CLIENT_SECRET_PREFIX, CLIENT_SECRET_RANDOM_LENGTH)
