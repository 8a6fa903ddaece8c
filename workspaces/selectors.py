from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Exists, F, OuterRef
from django.http import Http404

from .models import Membership, SecurityAlert, Workspace
from .roles import Role

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser


def membership_for(*, user: AbstractBaseUser | AnonymousUser, slug: str) -> Membership:
    """The user's membership of the workspace `slug`; 404 for unknown slugs and non-members alike,
    so the existence of other tenants' workspaces is not disclosed."""
    if not user.is_authenticated:
        raise Http404
    # Whether the workspace has an unacknowledged security alert comes in the same query, so the
    # dashboard's banner costs nothing on the pages of a workspace without one.
    open_alerts = SecurityAlert.objects.open().filter(workspace=OuterRef("workspace"))
    try:
        return (
            Membership.objects.select_related("workspace", "workspace__plan")
            .annotate(has_open_security_alerts=Exists(open_alerts))
            .get(user=user, workspace__slug=slug)
        )
    except Membership.DoesNotExist:
        raise Http404("No such workspace.") from None


def workspaces_for_user(user: AbstractBaseUser | AnonymousUser) -> list[Workspace]:
    return list(Workspace.objects.for_user(user).order_by("name"))


def last_used_workspace(user: AbstractBaseUser | AnonymousUser) -> Workspace | None:
    """The workspace whose pages the user opened last (`Membership.last_used_at`), else the
    first by name."""
    membership = (
        Membership.objects.filter(user=user).select_related("workspace")
        .order_by(F("last_used_at").desc(nulls_last=True), "workspace__name").first()
    )
    return membership.workspace if membership else None


def open_security_alerts(workspace: Workspace, *, limit: int = 5) -> list[SecurityAlert]:
    return list(SecurityAlert.objects.for_workspace(workspace).open()[:limit])


def workspaces_only_owned_by(user: AbstractBaseUser) -> list[Workspace]:
    """The workspaces whose one owner is `user`: removing the user would leave them ownerless."""
    other_owners = Membership.objects.filter(
        workspace=OuterRef("pk"), role=Role.OWNER
    ).exclude(user=user)
    return list(
        Workspace.objects.filter(memberships__user=user, memberships__role=Role.OWNER)
        .exclude(Exists(other_owners))
        .order_by("name")
    )
