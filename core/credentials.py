"""The one shape of a Gatehouse credential, for every place that must never keep one.

API keys `gk_<prod|stg|dev>_…` (apikeys.tokens), OAuth access tokens `gat_…`, refresh tokens
`grt_…`, authorization codes `gac_…`, client secrets `gcs_…` (oauth.tokens), workspace
invitation tokens `gin_…` (workspaces.services) and webhook signing secrets `whsec_…`
(notifications.signing): a prefix and base62.
The audit log, log records (core.redaction) and stored idempotent responses all redact with this
pattern. It lives here, at the bottom of the layers, so that each of them can import it.

A substring of that shape is replaced by its prefix and `[REDACTED]` — never refused: a key named,
or a redirect URI containing, something that looks like a token is bad input, not a server error.
The match is deliberately loose (any 6+ base62 after the prefix, wherever it starts), so a
truncated or embedded token is caught too; redacting a lookalike costs nothing.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

from .ids import BASE62

CREDENTIAL_PREFIXES = (
    "gk_prod_", "gk_stg_", "gk_dev_", "gat_", "grt_", "gac_", "gcs_", "gin_", "whsec_",
)
CREDENTIAL_PATTERN = re.compile(
    "(" + "|".join(re.escape(p) for p in CREDENTIAL_PREFIXES) + ")[A-Za-z0-9]{6,}"
)
CREDENTIAL_PATTERN_BYTES = re.compile(CREDENTIAL_PATTERN.pattern.encode())
REDACTED = "[REDACTED]"


def redact_credentials(text: str) -> str:
    """`text` with every credential-shaped substring replaced by `<prefix>[REDACTED]`."""
    return CREDENTIAL_PATTERN.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


def redact_credentials_in(value: Any) -> Any:  # any JSON-shaped value
    """A copy of a JSON-shaped value (dicts, lists, strings…) with every string redacted, keys
    included."""
    if isinstance(value, str):
        return redact_credentials(value)
    if isinstance(value, dict):
        return {redact_credentials_in(k): redact_credentials_in(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_credentials_in(v) for v in value]
    return value


# --- The checksum every Gatehouse credential ends with (SPEC §3) ---------------------------------

CHECKSUM_LENGTH = 6


def base62_encode(number: int, width: int) -> str:
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(BASE62[remainder])
    return "".join(reversed(digits)).rjust(width, "0")


def checksum(body: str) -> str:
    """CRC32 of everything before the checksum, base62, left-padded with `0` to 6 characters."""
    return base62_encode(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)
