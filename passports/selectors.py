"""Reads for passports, always from the caller's workspace."""

from __future__ import annotations

import re

from core.pagination import keyset_page
from workspaces.models import Workspace

from .models import Passport

PUBLIC_ID = re.compile(r"psp_[0-9A-Za-z]{22}")


def passport_get(*, workspace: Workspace, public_id: str) -> Passport:
    """A passport of this workspace; DoesNotExist for unknown ids and other workspaces' alike."""
    if not PUBLIC_ID.fullmatch(public_id):  # never send arbitrary bytes (NUL...) to the database
        raise Passport.DoesNotExist
    return Passport.objects.for_workspace(workspace).get(public_id=public_id)


def passport_page(
    *, workspace: Workspace, status: str | None, cursor: str | None, limit: int
) -> tuple[list[Passport], str | None]:
    """One page of the workspace's passports in creation order, optionally of one status.
    The cursor is tied to the workspace and the filter."""
    queryset = Passport.objects.for_workspace(workspace)
    if status is not None:
        queryset = queryset.filter(status=status)
    return keyset_page(
        queryset, cursor=cursor, limit=limit,
        scope=f"passports:{workspace.pk}:{status or '*'}",
    )
