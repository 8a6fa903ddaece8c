"""The workspace credential policy (SPEC §12, issue 16), as GitHub's token policies: what the
owners require of API keys, and how existing keys that break it are treated.

Rules (each optional): a maximum key lifetime (7, 30, 90, 180 or 366 days: a key must expire
within that many days from now), the environments keys may be created in, and an IP allowlist
on production keys. A new key must comply (`apikey_create` refuses it, naming the rule); a
rotated key's successor expires within the maximum lifetime. When a rule is tightened, existing
keys that break it are listed with the reason (`key_violations`); in mode `warn` they are only
flagged, in mode `enforce` the gateway refuses them with 403 `policy_violation` naming the rule
until they are edited to comply. Nothing is ever revoked by a policy.

A pure function of the workspace's fields and the key's: no query, so the gateway's check of an
enforcing workspace costs nothing but Python on the row it already read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import models

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .models import Workspace

MAX_LIFETIME_DAYS = (7, 30, 90, 180, 366)
# The environments of an API key (`apikeys.models.Environment`, which this layer cannot import;
# tests/workspaces/test_credential_policy.py checks they agree).
ENVIRONMENTS = {"production": "Production", "staging": "Staging", "development": "Development"}


class PolicyMode(models.TextChoices):
    WARN = "warn", "Warn: flag non-compliant keys"
    ENFORCE = "enforce", "Enforce: refuse non-compliant keys (403 policy_violation)"


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str  # "max_lifetime", "environment" or "ip_allowlist"
    field: str  # the key's field that breaks it (for form errors)
    message: str


def _environments(names: Sequence[str]) -> str:
    words = [ENVIRONMENTS.get(n, n).lower() for n in names]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def key_violations(
    workspace: Workspace, *, environment: str, expires_at: datetime | None,
    allowed_ips: Sequence[str], now: datetime,
) -> list[Violation]:
    """Which of the workspace's rules a key with these settings breaks now (empty: none)."""
    found: list[Violation] = []
    days = workspace.key_max_lifetime_days
    if days and (expires_at is None or expires_at > now + timedelta(days=days)):
        found.append(Violation(
            "max_lifetime", "expires_at",
            f"The workspace's credential policy (maximum key lifetime) requires keys to expire "
            f"within {days} days.",
        ))
    allowed = workspace.key_environments
    if allowed and environment not in allowed:
        found.append(Violation(
            "environment", "environment",
            f"The workspace's credential policy (allowed environments) allows only "
            f"{_environments(allowed)} keys.",
        ))
    if workspace.production_keys_need_ip_allowlist and environment == "production" and (
        not allowed_ips
    ):
        found.append(Violation(
            "ip_allowlist", "allowed_ips",
            "The workspace's credential policy (IP allowlist for production keys) requires "
            "production keys to have allowed IPs.",
        ))
    return found


def lifetime_cap(workspace: Workspace, now: datetime) -> datetime | None:
    """The latest expiry a new or rotated key may have now (None: no maximum)."""
    days = workspace.key_max_lifetime_days
    return now + timedelta(days=days) if days else None


def enforcing(workspace: Workspace) -> bool:
    """Whether non-compliant keys are refused (a policy with rules, in mode `enforce`)."""
    return workspace.credential_policy_mode == PolicyMode.ENFORCE and bool(
        workspace.key_max_lifetime_days or workspace.key_environments
        or workspace.production_keys_need_ip_allowlist
    )


CREDENTIAL_POLICY_FIELDS = (
    "key_max_lifetime_days", "key_environments", "production_keys_need_ip_allowlist",
    "oauth_collections_by_default", "credential_policy_mode",
)


def policy_errors(changes: dict) -> dict[str, str]:
    """What is wrong with a change of the credential policy (field → message)."""
    errors: dict[str, str] = {}
    if "key_max_lifetime_days" in changes:
        days = changes["key_max_lifetime_days"]
        if days is not None and (isinstance(days, bool) or days not in MAX_LIFETIME_DAYS):
            errors["key_max_lifetime_days"] = "Choose no maximum, 7, 30, 90, 180 or 366 days."
    if "key_environments" in changes:
        names = changes["key_environments"]
        if not isinstance(names, list) or any(n not in ENVIRONMENTS for n in names):
            errors["key_environments"] = "Choose among production, staging and development."
    for field in ("production_keys_need_ip_allowlist", "oauth_collections_by_default"):
        if field in changes and not isinstance(changes[field], bool):
            errors[field] = "Choose yes or no."
    if "credential_policy_mode" in changes and (
        changes["credential_policy_mode"] not in PolicyMode.values
    ):
        errors["credential_policy_mode"] = "Choose warn or enforce."
    return errors
