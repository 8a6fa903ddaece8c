"""Writes for API keys. Every service is atomic and records its audit event in the same
transaction, so the dashboard, Django admin, commands and the API behave identically."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_record
from core.context import Actor, RequestContext
from core.credfilter import credential_created
from passports.models import Collection
from passports.selectors import collections_resolve
from workspaces.caps import budget_change, budget_errors
from workspaces.credential_policy import key_violations, lifetime_cap
from workspaces.models import Workspace
from workspaces.scopes import api_key_scopes

from .keycache import keycache_invalidate
from .models import ApiKey, Environment, KeyNetwork, KeyStatus
from .tokens import generate_token, token_digest, token_hint

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

ROTATION_OVERLAPS: dict[str, timedelta] = {
    "now": timedelta(0),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
MAX_ALLOWED_IPS = 50
# Far above any real need, and inside the column (PostgreSQL's integer), so a huge number is a form
# error rather than a database error.
MAX_RATE_LIMIT_PER_MINUTE = 1_000_000


def rate_limit_error(rate_limit_per_minute: int | None) -> str | None:
    if rate_limit_per_minute is None:
        return None
    if rate_limit_per_minute <= 0:
        return "The rate limit must be a positive number of requests."
    if rate_limit_per_minute > MAX_RATE_LIMIT_PER_MINUTE:
        return f"The rate limit can be at most {MAX_RATE_LIMIT_PER_MINUTE:,} requests per minute."
    return None


def _audit_key(
    key: ApiKey,
    action: str,
    *,
    actor: Actor,
    context: RequestContext,
    metadata: dict[str, Any] | None = None,
) -> None:
    audit_record(
        action=action,
        actor=actor,
        workspace=key.workspace,
        target_type="api_key",
        target_id=key.public_id,
        target_label=f"{key.name} ({key.display_hint})",
        context=context,
        metadata=metadata,
    )


def normalize_allowed_ips(values: list[str]) -> list[str]:
    """Validate CIDRs (or single addresses) and return them in canonical form."""
    networks: list[str] = []
    bad: list[str] = []
    for raw in values:
        value = raw.strip()
        if not value:
            continue
        try:
            networks.append(str(ipaddress.ip_network(value, strict=False)))
        except ValueError:
            bad.append(value)
    if bad:
        raise ValidationError(
            {"allowed_ips": f"Not an IP address or CIDR range: {', '.join(bad[:5])}."}
        )
    if len(networks) > MAX_ALLOWED_IPS:
        raise ValidationError({"allowed_ips": f"At most {MAX_ALLOWED_IPS} ranges."})
    return list(dict.fromkeys(networks))


def validate_key_settings(
    *,
    name: str,
    scopes: list[str],
    environment: str,
    expires_at: datetime | None,
    rate_limit_per_minute: int | None,
    now: datetime,
) -> None:
    errors: dict[str, str] = {}
    name = name.strip()
    if not name:
        errors["name"] = "Give the key a name."
    elif len(name) > 100:
        errors["name"] = "Use at most 100 characters."
    known = {s.name for s in api_key_scopes()}
    unknown = sorted(set(scopes) - known)
    if unknown:
        errors["scopes"] = f"Unknown scope: {', '.join(unknown)}."
    elif not scopes:
        errors["scopes"] = "Choose at least one scope."
    if environment not in Environment.values:
        errors["environment"] = "Choose production, staging or development."
    if expires_at is not None and expires_at <= now:
        errors["expires_at"] = "The expiry must be in the future."
    if rate_error := rate_limit_error(rate_limit_per_minute):
        errors["rate_limit_per_minute"] = rate_error
    if errors:
        raise ValidationError(errors)


def apikey_create(
    *,
    workspace: Workspace,
    name: str,
    scopes: list[str],
    environment: str,
    actor: Actor,
    context: RequestContext,
    note: str = "",
    expires_at: datetime | None = None,
    rate_limit_per_minute: int | None = None,
    allowed_ips: list[str] | None = None,
    collections: list[str] | None = None,
    daily_cap: int | None = None,
    credits: int | None = None,
    credits_refill: str = "",
) -> tuple[ApiKey, str]:
    """Create a key and return it with its token. The token exists only in this return value.
    `collections`: None reaches all passports, a list of collection ids (`col_…`) of this
    workspace restricts the key to them (SPEC §11; an unknown id is a ValidationError).
    `daily_cap`, `credits`, `credits_refill`: the key's own budget (SPEC §3), as
    `apikey_set_budget` sets it.

    Refused (ValidationError) past the plan's active-key limit; the workspace row is locked while
    counting so two concurrent creates cannot both take the last slot.
    """
    now = timezone.now()
    scopes = sorted(dict.fromkeys(scopes))
    validate_key_settings(
        name=name, scopes=scopes, environment=environment, expires_at=expires_at,
        rate_limit_per_minute=rate_limit_per_minute, now=now,
    )
    networks = normalize_allowed_ips(allowed_ips or [])
    reach = resolve_collections(workspace=workspace, public_ids=collections)
    if errors := budget_errors(daily_cap=daily_cap, credits=credits, refill=credits_refill):
        raise ValidationError(errors)
    with transaction.atomic():
        workspace = Workspace.objects.select_for_update().select_related("plan").get(
            pk=workspace.pk
        )
        # The workspace's credential policy (SPEC §12): a new key complies, or nothing is saved.
        violations = key_violations(
            workspace, environment=environment, expires_at=expires_at, allowed_ips=networks,
            now=now,
        )
        if violations:
            raise ValidationError({v.field: v.message for v in violations})
        limit = workspace.plan.active_keys_limit
        if ApiKey.objects.for_workspace(workspace).live(now).count() >= limit:
            raise ValidationError(
                f"The {workspace.plan.name} plan allows {limit} active keys, and this workspace "
                f"has {limit}. Revoke a key or upgrade the plan to create another."
            )
        key, token = _insert_key(
            workspace=workspace, name=name.strip(), note=note.strip(), scopes=scopes,
            environment=environment, expires_at=expires_at,
            rate_limit_per_minute=rate_limit_per_minute, allowed_ips=networks,
            collections=None if reach is None else [c.pk for c in reach],
            daily_cap=daily_cap, credits=credits, credits_refill=credits_refill,
            created_by=actor.user, rotated_from=None, now=now,
        )
        _audit_key(
            key, "key.created", actor=actor, context=context,
            metadata={
                "name": key.name, "scopes": key.scopes, "environment": key.environment,
                "expires_at": key.expires_at.isoformat() if key.expires_at else None,
                "rate_limit_per_minute": key.rate_limit_per_minute,
                "allowed_ips": key.allowed_ips,
                "collections": None if reach is None else [c.public_id for c in reach],
                **({"daily_cap": daily_cap} if daily_cap is not None else {}),
                **({"credits": credits, "credits_refill": credits_refill}
                   if credits is not None else {}),
            },
        )
    return key, token


def _insert_key(
    *, created_by: AbstractBaseUser | None, rotated_from: ApiKey | None, now: datetime,
    **fields: Any,
) -> tuple[ApiKey, str]:
    for _attempt in range(3):  # a digest collision is astronomically unlikely; retry anyway
        token = generate_token(fields["environment"])
        key = ApiKey(
            **fields, digest=token_digest(token), hint=token_hint(token), created_at=now,
            created_by=created_by,
            rotated_from=rotated_from,
        )
        try:
            with transaction.atomic():
                key.save()
        except IntegrityError:
            continue
        credential_created(key.digest)  # known on every process before its first request
        return key, token
    raise RuntimeError("Could not generate a unique API key.")


def _locked(key: ApiKey) -> ApiKey:
    return ApiKey.objects.select_for_update().select_related("workspace").get(pk=key.pk)


def apikey_rotate(
    *,
    key: ApiKey,
    overlap: str,
    actor: Actor,
    context: RequestContext,
) -> tuple[ApiKey, str]:
    """Issue a successor with the same name, scopes and configuration and a new token; the old key
    keeps working for `overlap` (`now`, `1h`, `24h`, `7d`) and then stops (its expiry moves to the
    end of the overlap, never later than it already was)."""
    if overlap not in ROTATION_OVERLAPS:
        raise ValidationError({"overlap": "Choose now, 1 hour, 24 hours or 7 days."})
    now = timezone.now()
    with transaction.atomic():
        old = _locked(key)
        state = old.effective_status(now)
        if state in (KeyStatus.REVOKED, "expired"):
            raise ValidationError(f"This key is {state}; only a live key can be rotated.")
        if old.successors.exists():
            # A second successor would leave two "current" keys with one name and no clear owner.
            raise ValidationError("This key was already rotated; rotate its replacement instead.")
        # A successor expires within the policy's maximum lifetime (SPEC §12), whatever the
        # predecessor's expiry was.
        cap = lifetime_cap(old.workspace, now)
        expires_at = old.expires_at if cap is None or (
            old.expires_at is not None and old.expires_at <= cap
        ) else cap
        new, token = _insert_key(
            workspace=old.workspace, name=old.name, note=old.note, scopes=old.scopes,
            environment=old.environment, expires_at=expires_at,
            rate_limit_per_minute=old.rate_limit_per_minute, allowed_ips=old.allowed_ips,
            collections=old.collections, daily_cap=old.daily_cap, credits=old.credits,
            credits_refill=old.credits_refill,
            created_by=actor.user, rotated_from=old, now=now,
        )
        stops_at = now + ROTATION_OVERLAPS[overlap]
        if old.expires_at is None or stops_at < old.expires_at:
            old.expires_at = stops_at
            old.save(update_fields=["expires_at"])
            keycache_invalidate(old)
        _audit_key(
            old, "key.rotated", actor=actor, context=context,
            metadata={
                "successor": new.public_id, "overlap": overlap,
                "stops_at": old.expires_at.isoformat(),
            },
        )
    return new, token


def _set_status(
    *, key: ApiKey, to: str, allowed_from: set[str], action: str, actor: Actor,
    context: RequestContext, metadata: dict[str, Any] | None = None,
) -> ApiKey:
    now = timezone.now()
    with transaction.atomic():
        key = _locked(key)
        state = key.effective_status(now)
        if state not in allowed_from:
            verb = {"key.paused": "paused", "key.resumed": "resumed", "key.revoked": "revoked"}
            if state == to:
                raise ValidationError(f"This key is already {to}.")
            raise ValidationError(f"This key is {state} and cannot be {verb[action]}.")
        key.status = to
        fields = ["status"]
        if to == KeyStatus.REVOKED:
            key.revoked_at = now
            key.revoked_by = actor.user
            key.revoked_reason = (metadata or {}).get("reason", "")
            fields += ["revoked_at", "revoked_by", "revoked_reason"]
        key.save(update_fields=fields)
        keycache_invalidate(key)
        _audit_key(
            key, action, actor=actor, context=context,
            metadata=metadata,
        )
    return key


def apikey_pause(*, key: ApiKey, actor: Actor, context: RequestContext) -> ApiKey:
    return _set_status(
        key=key, to=KeyStatus.PAUSED, allowed_from={KeyStatus.ACTIVE}, action="key.paused",
        actor=actor, context=context,
    )


def apikey_resume(*, key: ApiKey, actor: Actor, context: RequestContext) -> ApiKey:
    return _set_status(
        key=key, to=KeyStatus.ACTIVE, allowed_from={KeyStatus.PAUSED}, action="key.resumed",
        actor=actor, context=context,
    )


def apikey_revoke(
    *,
    key: ApiKey,
    actor: Actor,
    context: RequestContext,
    reason: str = "",
    metadata: dict[str, Any] | None = None,
) -> ApiKey:
    """Revoke permanently. Every process's cached copy of the key is invalidated on commit
    (`apikeys.keycache`), so the next request on any process is refused."""
    return _set_status(
        key=key, to=KeyStatus.REVOKED, allowed_from={KeyStatus.ACTIVE, KeyStatus.PAUSED},
        action="key.revoked", actor=actor, context=context,
        metadata={**(metadata or {}), **({"reason": reason} if reason else {})},
    )


def apikey_set_rate_limit(
    *,
    key: ApiKey,
    rate_limit_per_minute: int | None,
    actor: Actor,
    context: RequestContext,
) -> ApiKey:
    """Set or clear (None) the key's requests-per-minute limit; audited when it changes."""
    if rate_error := rate_limit_error(rate_limit_per_minute):
        raise ValidationError({"rate_limit_per_minute": rate_error})
    with transaction.atomic():
        key = _locked(key)
        old = key.rate_limit_per_minute
        if old == rate_limit_per_minute:
            return key
        key.rate_limit_per_minute = rate_limit_per_minute
        key.save(update_fields=["rate_limit_per_minute"])
        keycache_invalidate(key)
        _audit_key(
            key, "key.rate_limit_changed", actor=actor,
            context=context, metadata={"from": old, "to": rate_limit_per_minute},
        )
    return key



MAX_COLLECTIONS = 100


def resolve_collections(
    *, workspace: Workspace, public_ids: list[str] | None
) -> list[Collection] | None:
    """SPEC §11: None (all passports) or this workspace's collections by id, in the given
    order; a ValidationError naming any unknown or another workspace's id, so nothing is saved."""
    if public_ids is None:
        return None
    wanted = list(dict.fromkeys(value.strip() for value in public_ids if value.strip()))
    if len(wanted) > MAX_COLLECTIONS:
        raise ValidationError({"collections": f"Choose at most {MAX_COLLECTIONS} collections."})
    found = collections_resolve(workspace=workspace, public_ids=wanted)
    unknown = [value for value in wanted if value not in found]
    if unknown:
        shown = ", ".join(repr(value[:40]) for value in unknown[:5])
        raise ValidationError(
            {"collections": f"No collection of this workspace has the id {shown}."}
        )
    return [found[value] for value in wanted]


def apikey_set_restriction(
    *,
    key: ApiKey,
    collections: list[str] | None,
    actor: Actor,
    context: RequestContext,
) -> ApiKey:
    """Reach all passports (None) or only these collections (ids): `apikey_update` of the
    collections alone (audited `key.updated`, on the next request on every process)."""
    return apikey_update(
        key=key, changes={"collections": collections}, actor=actor, context=context
    )


def collection_labels(*, workspace: Workspace, ids: list[int] | None) -> list[str] | None:
    """The public ids of a key's collections (row ids of deleted ones left out)."""
    if ids is None:
        return None
    return list(
        Collection.objects.filter(workspace=workspace, pk__in=ids).values_list(
            "public_id", flat=True
        )
    )


# What `apikey_update` edits (SPEC §3 "Edit"); the environment is part of the token and a key's
# status has its own services (pause, resume, revoke).
EDITABLE_FIELDS = (
    "name", "note", "scopes", "allowed_ips", "rate_limit_per_minute", "expires_at", "collections",
)


def _shown_value(field: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def apikey_update(
    *,
    key: ApiKey,
    changes: dict[str, Any],
    actor: Actor,
    context: RequestContext,
) -> ApiKey:
    """Edit a live key's name, note, scopes, allowed IPs, rate limit, expiry (None: never) and
    collections (None: all passports, else `col_…` ids) — only the fields in `changes`.

    Every value is validated before anything is written (a ValidationError names each bad field
    and nothing is saved). One `key.updated` event records the fields that changed, each as
    [before, after]; an edit that changes nothing writes nothing. The key's cached copies on every
    process are invalidated on commit (`apikeys.keycache`, as a revocation), so new scopes, IPs
    or limits apply to the next request everywhere."""
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValidationError(f"These fields cannot be edited: {', '.join(unknown)}.")
    now = timezone.now()
    errors: dict[str, list[str]] = {}
    wanted: dict[str, Any] = {}
    if "name" in changes:
        name = str(changes["name"] or "").strip()
        if not name:
            errors["name"] = ["Give the key a name."]
        elif len(name) > 100:
            errors["name"] = ["Use at most 100 characters."]
        wanted["name"] = name
    if "note" in changes:
        note = str(changes["note"] or "").strip()
        if len(note) > 1000:
            errors["note"] = ["Use at most 1,000 characters."]
        wanted["note"] = note
    if "scopes" in changes:
        scopes = sorted(dict.fromkeys(changes["scopes"] or []))
        known = {s.name for s in api_key_scopes()}
        bad = sorted(set(scopes) - known)
        if bad:
            errors["scopes"] = [f"Unknown scope: {', '.join(s[:40] for s in bad[:5])}."]
        elif not scopes:
            errors["scopes"] = ["Choose at least one scope."]
        wanted["scopes"] = scopes
    if "rate_limit_per_minute" in changes:
        limit = changes["rate_limit_per_minute"]
        if rate_error := rate_limit_error(limit):
            errors["rate_limit_per_minute"] = [rate_error]
        wanted["rate_limit_per_minute"] = limit
    if "expires_at" in changes:
        expires_at = changes["expires_at"]
        if expires_at is not None and expires_at != key.expires_at and expires_at <= now:
            errors["expires_at"] = ["The expiry must be in the future."]
        wanted["expires_at"] = expires_at
    if "allowed_ips" in changes:
        try:
            wanted["allowed_ips"] = normalize_allowed_ips(list(changes["allowed_ips"] or []))
        except ValidationError as exc:
            errors.update(exc.message_dict)
    reach: list[Collection] | None = None
    if "collections" in changes:
        try:
            reach = resolve_collections(workspace=key.workspace, public_ids=changes["collections"])
        except ValidationError as exc:
            errors.update(exc.message_dict)
        else:
            wanted["collections"] = None if reach is None else sorted(c.pk for c in reach)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        key = _locked(key)
        state = key.effective_status(now)
        if state in (KeyStatus.REVOKED, "expired"):
            raise ValidationError(f"This key is {state}; only a live key can be edited.")
        _refuse_new_violations(key, wanted, now)
        changed: dict[str, list[Any]] = {}
        for field, value in wanted.items():
            old = getattr(key, field)
            if field == "collections":
                if (None if old is None else sorted(old)) == value:
                    continue
                changed[field] = [
                    collection_labels(workspace=key.workspace, ids=old),
                    None if reach is None else [c.public_id for c in reach],
                ]
            elif old == value:
                continue
            else:
                changed[field] = [_shown_value(field, old), _shown_value(field, value)]
            setattr(key, field, value)
        if not changed:
            return key
        key.save(update_fields=list(changed))
        keycache_invalidate(key)
        _audit_key(
            key, "key.updated", actor=actor, context=context,
            metadata={"changed": list(changed), **changed},
        )
    return key


def _policy_settings(key: ApiKey, wanted: dict[str, Any]) -> dict[str, Any]:
    return {
        "environment": key.environment,
        "expires_at": wanted.get("expires_at", key.expires_at),
        "allowed_ips": wanted.get("allowed_ips", key.allowed_ips),
    }


def _refuse_new_violations(key: ApiKey, wanted: dict[str, Any], now: datetime) -> None:
    """An edit may leave a rule the key already breaks (the owner fixes one thing at a time),
    but may not break one more (SPEC §12)."""
    before = {v.rule for v in key_violations(
        key.workspace, **_policy_settings(key, {}), now=now
    )}
    after = key_violations(key.workspace, **_policy_settings(key, wanted), now=now)
    new = [v for v in after if v.rule not in before]
    if new:
        raise ValidationError({v.field: v.message for v in new})


def apikey_set_budget(
    *,
    key: ApiKey,
    daily_cap: int | None,
    credits: int | None,
    credits_refill: str = "",
    actor: Actor,
    context: RequestContext,
) -> ApiKey:
    """Set the key's own budget (SPEC §3 "Per-key caps"): a daily request cap and/or a credit
    balance with an optional `daily`/`monthly` refill (None: none). Changing the credits or
    their refill sets the balance to `credits` at once. Audited as `key.updated` (the fields
    before → after); in force on the next request on every process (`apikeys.keycache`)."""
    with transaction.atomic():
        key = _locked(key)
        state = key.effective_status()
        if state in (KeyStatus.REVOKED, "expired"):
            raise ValidationError(f"This key is {state}; only a live key can be edited.")
        changed = budget_change(
            key, daily_cap=daily_cap, credits=credits, refill=credits_refill
        )
        if not changed:
            return key
        key.save(update_fields=[*changed, "credits_epoch"])
        keycache_invalidate(key)
        _audit_key(
            key, "key.updated", actor=actor, context=context,
            metadata={"changed": list(changed), **changed},
        )
    return key


def apikey_flag_new_network(
    *, key_id: int, network: str, at: datetime, context: RequestContext,
) -> bool:
    """The usage flush saw `key_id` used from `network` for the first time although the key has
    a week of history (issue 16 §4): flag the key (list, page, Overview) and record
    `key.new_network` (its context: the first request from that network, door `usage`).
    Idempotent across processes: the flag is set by one conditional UPDATE,
    and only the flush whose UPDATE changed the row records the event (a concurrent flush of
    the same network waits on the row lock, re-reads it and changes nothing). Returns whether
    this call flagged the key."""
    with transaction.atomic():
        flagged = (
            ApiKey.objects.filter(pk=key_id).exclude(new_network=network)
            .update(new_network=network, new_network_at=at)
        )
        if not flagged:
            return False
        key = ApiKey.objects.select_related("workspace").get(pk=key_id)
        _audit_key(
            key, "key.new_network", actor=Actor.system("usage monitor"), context=context,
            metadata={"network": network},
        )
    return True


def apikey_dismiss_new_network(*, key: ApiKey) -> ApiKey:
    """Someone looked at the new-network flag and dismissed it (the networks stay recorded)."""
    ApiKey.objects.filter(pk=key.pk).update(new_network="", new_network_at=None)
    key.new_network, key.new_network_at = "", None
    return key


def apikey_restrict_to_networks(
    *, key: ApiKey, actor: Actor, context: RequestContext,
) -> ApiKey:
    """Stripe's allowlist suggestion in one click: the key's allowed IPs become the networks it
    has been used from (`KeyNetwork`), through `apikey_update` (so `key.updated`, validation and
    cache invalidation are the edit's), and the new-network flag is cleared."""
    networks = list(
        KeyNetwork.objects.filter(api_key=key).order_by("network").values_list("network", flat=True)
    )
    if not networks:
        raise ValidationError({"allowed_ips": "This key has not been used from any network yet."})
    with transaction.atomic():
        key = apikey_update(key=key, changes={"allowed_ips": networks}, actor=actor,
                            context=context)
        apikey_dismiss_new_network(key=key)
    return key
