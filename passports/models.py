from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.ids import new_public_id
from workspaces.models import Workspace


def new_passport_id() -> str:
    return new_public_id("psp")


def new_collection_id() -> str:
    return new_public_id("col")


class Collection(models.Model):
    """A named group of a workspace's passports (SPEC §11); a passport is in at most one.
    Credentials (API keys, OAuth grants) may be restricted to selected collections."""

    public_id = models.CharField(
        max_length=32, unique=True, default=new_collection_id, editable=False
    )
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="collections"
    )
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="collection_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name


class PassportStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"


class PassportQuerySet(models.QuerySet["Passport"]):
    def for_workspace(self, workspace: Workspace) -> PassportQuerySet:
        return self.filter(workspace=workspace)

    def within(self, collections: frozenset[int] | None) -> PassportQuerySet:
        """Only the passports a credential restricted to these collection row ids reaches
        (None: unrestricted; an empty set reaches nothing). A condition in the same query."""
        if collections is None:
            return self
        return self.filter(collection_id__in=sorted(collections))


class Passport(models.Model):
    """A digital product passport: one serialised item of a product (GTIN + serial number).

    The example protected resource of the JSON API (SPEC §4). Reached only through its
    workspace, by its public id (`psp_…`); the row id orders pages (creation order).
    """

    public_id = models.CharField(
        max_length=32, unique=True, default=new_passport_id, editable=False
    )
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="passports")
    gtin = models.CharField("GTIN", max_length=14)
    serial_number = models.CharField(max_length=20)
    product_name = models.CharField(max_length=200)
    status = models.CharField(
        max_length=16, choices=PassportStatus.choices, default=PassportStatus.DRAFT
    )
    collection = models.ForeignKey(
        Collection, null=True, blank=True, on_delete=models.SET_NULL, related_name="passports"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = PassportQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "gtin", "serial_number"], name="passport_unique_serial"
            ),
            models.CheckConstraint(
                condition=Q(status__in=PassportStatus.values), name="passport_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["workspace", "id"], name="passport_ws_id"),
            models.Index(fields=["workspace", "status", "id"], name="passport_ws_status_id"),
        ]

    def __str__(self) -> str:
        return f"{self.product_name} ({self.gtin}/{self.serial_number})"


class PassportOverageDay(models.Model):
    """How many passports a workspace created past its plan's cap on one UTC day, with overage
    on (SPEC §12): the units billed as overage. Written by `passport_create` under the lock of
    the workspace row, so concurrent creates count exactly."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="passport_overage_days"
    )
    day = models.DateField()
    units = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-day"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "day"], name="overage_unique_day"),
        ]

    def __str__(self) -> str:
        return f"{self.workspace} {self.day}: {self.units}"
