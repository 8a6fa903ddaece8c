"""Keep credentials out of logs and error reports (SPEC §3: a token is never logged).

`RedactSecretsFilter` is attached to every log handler: it rewrites a record's message (after
%-formatting) and its exception text, replacing anything shaped like a Gatehouse credential —
API keys `gk_…`, OAuth access `gat_…` and refresh `grt_…` tokens, authorization codes `gac_…`,
client secrets `gcs_…` — and Authorization / Cookie header values and OAuth secret parameters
(`client_secret=`, `code=`, `code_verifier=`, `password=` …). `SecretsExceptionReporterFilter`
does the same for Django's error reports.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from django.views.debug import SafeExceptionReporterFilter

from .credentials import CREDENTIAL_PATTERN, REDACTED, redact_credentials

if TYPE_CHECKING:
    from django.http import HttpRequest

# API keys, access and refresh tokens, authorization codes and client secrets: the one pattern
# the audit log and stored responses redact with too (core.credentials).
TOKEN_PATTERN = CREDENTIAL_PATTERN
HEADER_PATTERN = re.compile(
    r"(?i)((?:authorization|proxy-authorization|cookie|set-cookie|x-api-key)['\"]?\s*[:=]\s*['\"]?)"
    r"([^'\"\r\n,}]+)"
)
# The OAuth parameters that carry secrets, as `name=value` (form bodies, query strings) and
# `'name': 'value'` (oauthlib's debug dicts).
PARAMETER_PATTERN = re.compile(
    r"(?i)(\b(?:client_secret|code_verifier|refresh_token|access_token|password|code)['\"]?"
    r"\s*[:=]\s*['\"]?)([^'\"\r\n,}&\s]+)"
)


def redact(text: str) -> str:
    text = redact_credentials(text)
    text = HEADER_PATTERN.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    return PARAMETER_PATTERN.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is not ours to fix; leave the record alone
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
            record.exc_info = None  # the redacted text is what handlers print
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class SecretsExceptionReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|PEPPER", flags=re.IGNORECASE
    )

    def get_safe_request_meta(self, request: HttpRequest) -> dict[str, Any]:
        meta = super().get_safe_request_meta(request)
        for name in ("HTTP_AUTHORIZATION", "HTTP_PROXY_AUTHORIZATION", "HTTP_COOKIE"):
            if name in meta:
                meta[name] = self.cleansed_substitute
        return {k: redact(v) if isinstance(v, str) else v for k, v in meta.items()}


def install_log_record_redaction() -> None:
    """Redact every log record at creation, whichever logger or handler (pytest's capture
    included) sees it later. Idempotent; called from `WorkspacesConfig.ready()`."""
    current = logging.getLogRecordFactory()
    if getattr(current, "gatehouse_redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        if record.args or isinstance(record.msg, str):
            try:
                message = record.getMessage()
            except Exception:
                return record
            redacted = redact(message)
            if redacted != message or record.args:
                record.msg, record.args = redacted, None
        return record

    factory.gatehouse_redacting = True
    logging.setLogRecordFactory(factory)
