"""Writes for passports. Each is atomic and audited in the same transaction, attributed to the
actor that made it (an API key, an OAuth app, a user or a command)."""

from __future__ import annotations

import re
from datetime import UTC

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from audit.services import audit_record
from core.context import Actor, RequestContext
from workspaces.models import Workspace

from .gs1 import gtin_problem, serial_problem
from .models import Collection, Passport, PassportOverageDay, PassportStatus

MAX_PRODUCT_NAME = 200
MAX_COLLECTION_NAME = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UNCHANGED:
    """Passed for a field that is not to change (where None is a value)."""


class PassportConflict(Exception):
    """Another passport of the workspace has the same GTIN and serial number."""

    message = "A passport with this GTIN and serial number already exists in this workspace."


class PassportLimitReached(Exception):
    """The plan's passport cap is reached: `overage` says whether the plan allows overage."""

    def __init__(self, message: str, *, overage: bool) -> None:
        super().__init__(message)
        self.message = message
        self.overage = overage


def _validate(
    *, gtin: str, serial_number: str, product_name: str, status: str
) -> dict[str, str]:
    errors: dict[str, str] = {}
    if problem := gtin_problem(gtin):
        errors["gtin"] = problem
    if problem := serial_problem(serial_number):
        errors["serial_number"] = problem
    if not product_name.strip():
        errors["product_name"] = "Give the product a name."
    elif len(product_name) > MAX_PRODUCT_NAME:
        errors["product_name"] = f"Use at most {MAX_PRODUCT_NAME} characters."
    elif _CONTROL.search(product_name):
        errors["product_name"] = "Remove the control characters (such as NUL or line breaks)."
    if status not in PassportStatus.values:
        errors["status"] = "Use draft or published."
    return errors


def _label(passport: Passport) -> str:
    return f"GTIN {passport.gtin} serial {passport.serial_number}"


def _audit(
    passport: Passport, action: str, *, actor: Actor, context: RequestContext,
    metadata: dict,
) -> None:
    audit_record(
        action=action,
        actor=actor,
        workspace=passport.workspace,
        target_type="passport",
        target_id=passport.public_id,
        target_label=_label(passport),
        context=context,
        metadata=metadata,
    )


def _check_cap(workspace: Workspace) -> bool:
    """SPEC §2/§4/§12: at the plan's passport cap, 403 `plan_limit_reached` (no overage on the
    plan), 402 `overage_required` (overage allowed but off), or — overage on — True: this one is
    an overage unit. The workspace row is locked while counting (and its overage switch read
    from it, not from a cached copy), so two concurrent creates cannot both take the last slot
    and the day's units count exactly. Unlimited plans skip the lock and the count."""
    plan = workspace.plan
    if plan.passports_limit is None:
        return False
    overage_enabled = Workspace.objects.select_for_update().filter(pk=workspace.pk).values_list(
        "overage_enabled", flat=True
    ).first()
    count = Passport.objects.for_workspace(workspace).count()
    if count < plan.passports_limit:
        return False
    limit = plan.passports_limit
    if plan.overage_allowed and overage_enabled:
        return True
    if plan.overage_allowed:
        raise PassportLimitReached(
            f"The {plan.name} plan includes {limit} passports and this workspace has {count}; "
            "more passports are billed as overage, which an owner turns on in the dashboard "
            "(Settings → Plan).",
            overage=True,
        )
    raise PassportLimitReached(
        f"The {plan.name} plan allows {limit} passports and this workspace has {count}; "
        "delete a passport or upgrade the plan to create another.",
        overage=False,
    )


def _count_overage(workspace: Workspace) -> None:
    """One more overage unit today (UTC), under the workspace lock `_check_cap` took."""
    day = timezone.now().astimezone(UTC).date()
    updated = PassportOverageDay.objects.filter(workspace=workspace, day=day).update(
        units=F("units") + 1
    )
    if not updated:
        PassportOverageDay.objects.create(workspace=workspace, day=day, units=1)


def passport_create(
    *,
    workspace: Workspace,
    gtin: str,
    serial_number: str,
    product_name: str,
    status: str = PassportStatus.DRAFT,
    collection: Collection | None = None,
    actor: Actor,
    context: RequestContext,
) -> Passport:
    """Create a passport. ValidationError (per field) for bad values, PassportConflict for a
    duplicate GTIN + serial number, PassportLimitReached at the plan's cap."""
    errors = _validate(
        gtin=gtin, serial_number=serial_number, product_name=product_name, status=status
    )
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    passport = Passport(
        workspace=workspace, gtin=gtin, serial_number=serial_number,
        product_name=product_name.strip(), status=status, collection=collection,
        created_at=now, updated_at=now,
    )
    try:
        with transaction.atomic():
            overage = _check_cap(workspace)
            passport.save()
            if overage:
                _count_overage(workspace)
            _audit(
                passport, "passport.created", actor=actor, context=context,
                metadata={
                    "gtin": gtin, "status": status,
                    "collection": collection.public_id if collection else None,
                    **({"overage": True} if overage else {}),
                },
            )
    except IntegrityError:
        if Passport.objects.for_workspace(workspace).filter(
            gtin=gtin, serial_number=serial_number
        ).exists():
            raise PassportConflict from None
        raise
    return passport


def passport_update(
    *,
    passport: Passport,
    gtin: str | None = None,
    serial_number: str | None = None,
    product_name: str | None = None,
    status: str | None = None,
    collection: Collection | None | type[UNCHANGED] = UNCHANGED,
    actor: Actor,
    context: RequestContext,
) -> Passport:
    """Change the given fields (None leaves a field as it is, and `collection=UNCHANGED`
    likewise; `collection=None` takes the passport out of its collection); same errors as
    `passport_create`. A call that changes nothing writes nothing."""
    changes = {
        name: value
        for name, value in (
            ("gtin", gtin), ("serial_number", serial_number),
            ("product_name", product_name.strip() if product_name is not None else None),
            ("status", status),
        )
        if value is not None
    }
    merged = {
        "gtin": passport.gtin, "serial_number": passport.serial_number,
        "product_name": passport.product_name, "status": passport.status, **changes,
    }
    errors = {name: problem for name, problem in _validate(**merged).items() if name in changes}
    if errors:
        raise ValidationError(errors)
    changed = sorted(name for name, value in changes.items() if getattr(passport, name) != value)
    if collection is not UNCHANGED and collection != passport.collection:
        changed.append("collection")
        changes["collection"] = collection
    changed.sort()
    if not changed:
        return passport
    try:
        with transaction.atomic():
            locked = Passport.objects.select_for_update().select_related("workspace").get(
                pk=passport.pk
            )
            for name in changed:
                setattr(locked, name, changes[name])
            locked.updated_at = timezone.now()
            locked.save(update_fields=[*changed, "updated_at"])
            _audit(
                locked, "passport.updated", actor=actor, context=context,
                metadata={"changed": changed},
            )
    except IntegrityError:
        raise PassportConflict from None
    return locked


def passport_delete(
    *,
    passport: Passport,
    actor: Actor,
    context: RequestContext,
) -> None:
    """Delete for good; DoesNotExist when it is already gone (a concurrent delete)."""
    with transaction.atomic():
        deleted, _ = Passport.objects.filter(pk=passport.pk).delete()
        if not deleted:
            raise Passport.DoesNotExist
        _audit(passport, "passport.deleted", actor=actor, context=context, metadata={})


def _validate_collection_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the collection a name."})
    if len(name) > MAX_COLLECTION_NAME:
        raise ValidationError({"name": f"Use at most {MAX_COLLECTION_NAME} characters."})
    if _CONTROL.search(name):
        raise ValidationError(
            {"name": "Remove the control characters (such as NUL or line breaks)."}
        )
    if any("\ud800" <= ch <= "\udfff" for ch in name):
        raise ValidationError({"name": "Must be valid Unicode text (no lone surrogates)."})
    return name


def _audit_collection(
    collection: Collection, action: str, *, actor: Actor, context: RequestContext,
    metadata: dict,
) -> None:
    audit_record(
        action=action, actor=actor, workspace=collection.workspace,
        target_type="collection", target_id=collection.public_id,
        target_label=collection.name, context=context, metadata=metadata,
    )


class CollectionConflict(Exception):
    message = "A collection with this name already exists in this workspace."


def collection_create(
    *, workspace: Workspace, name: str, actor: Actor, context: RequestContext
) -> Collection:
    """Create a collection (SPEC §11). ValidationError for a bad name, CollectionConflict for
    a name the workspace already uses."""
    collection = Collection(workspace=workspace, name=_validate_collection_name(name))
    try:
        with transaction.atomic():
            collection.save()
            _audit_collection(
                collection, "collection.created", actor=actor, context=context,
                metadata={"name": collection.name},
            )
    except IntegrityError:
        raise CollectionConflict from None
    return collection


def collection_update(
    *, collection: Collection, name: str, actor: Actor, context: RequestContext
) -> Collection:
    """Rename a collection; same errors as `collection_create`."""
    name = _validate_collection_name(name)
    if name == collection.name:
        return collection
    before = collection.name
    try:
        with transaction.atomic():
            updated = Collection.objects.filter(pk=collection.pk).update(name=name)
            if not updated:
                raise Collection.DoesNotExist
            collection.name = name
            _audit_collection(
                collection, "collection.updated", actor=actor, context=context,
                metadata={"name": [before, name]},
            )
    except IntegrityError:
        raise CollectionConflict from None
    return collection


def collection_delete(*, collection: Collection, actor: Actor, context: RequestContext) -> None:
    """Delete a collection; its passports stay, in no collection. A credential restricted to it
    keeps the dead id, which matches nothing: a delete never widens a credential."""
    with transaction.atomic():
        deleted, _ = Collection.objects.filter(pk=collection.pk).delete()
        if not deleted:
            raise Collection.DoesNotExist
        _audit_collection(
            collection, "collection.deleted", actor=actor, context=context, metadata={}
        )
