"""OAuth token formats: access tokens `gat_…`, refresh tokens `grt_…` (SPEC §7).

`<prefix><40 base62 random><6 base62 CRC32 checksum>`, the same shape discipline as API keys: a
mistyped, truncated or tampered token is rejected without a database query. django-oauth-toolkit
stores only SHA-256 checksums of them (COMPLIANT_BCP_RFC9700_TOKEN_STORAGE); the raw value exists
only in the token response.
"""

from __future__ import annotations

import hmac
import re

from apikeys.tokens import checksum
from workspaces.ids import random_base62

ACCESS_TOKEN_PREFIX = "gat_"
REFRESH_TOKEN_PREFIX = "grt_"
RANDOM_LENGTH = 40
CHECKSUM_LENGTH = 6
TOKEN_LENGTH = 4 + RANDOM_LENGTH + CHECKSUM_LENGTH
_SHAPE = re.compile(r"(gat_|grt_)[0-9A-Za-z]{46}")


def _generate(prefix: str) -> str:
    body = prefix + random_base62(RANDOM_LENGTH)
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
