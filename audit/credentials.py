"""The one shape of a Gatehouse credential, for every place that must never keep one.

API keys `gk_<prod|stg|dev>_…` (apikeys.tokens), OAuth access tokens `gat_…`, refresh tokens
`grt_…`, authorization codes `gac_…` and client secrets `gcs_…` (oauth.tokens): a prefix and base62.
The audit log, log records (config.redaction) and stored idempotent responses all redact with this
pattern. It lives here, at the bottom of the layers, so that each of them can import it.

A substring of that shape is replaced by its prefix and `[REDACTED]` — never refused: a key named,
or a redirect URI containing, something that looks like a token is bad input, not a server error.
The match is deliberately loose (any 6+ base62 after the prefix, wherever it starts), so a
truncated or embedded token is caught too; redacting a lookalike costs nothing.
"""

from __future__ import annotations

import re
from typing import Any

CREDENTIAL_PREFIXES = ("gk_prod_", "gk_stg_", "gk_dev_", "gat_", "grt_", "gac_", "gcs_")
CREDENTIAL_PATTERN = re.compile(
    "(" + "|".join(re.escape(p) for p in CREDENTIAL_PREFIXES) + ")[A-Za-z0-9]{6,}"
)
CREDENTIAL_PATTERN_BYTES = re.compile(CREDENTIAL_PATTERN.pattern.encode())
REDACTED = "[REDACTED]"


def redact_credentials(text: str) -> str:
    """`text` with every credential-shaped substring replaced by `<prefix>[REDACTED]`."""
    return CREDENTIAL_PATTERN.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


def redact_credentials_in(value: Any) -> Any:  # noqa: ANN401 — any JSON-shaped value
    """A copy of a JSON-shaped value (dicts, lists, strings…) with every string redacted, keys
    included."""
    if isinstance(value, str):
        return redact_credentials(value)
    if isinstance(value, dict):
        return {redact_credentials_in(k): redact_credentials_in(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_credentials_in(v) for v in value]
    return value
