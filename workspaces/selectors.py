from __future__ import annotations

from django.http import Http404

from .models import Membership, Workspace


def membership_for(*, user, slug: str) -> Membership:  # noqa: ANN001
    """The user's membership of the workspace `slug`; 404 for unknown slugs and non-members alike,
    so the existence of other tenants' workspaces is not disclosed."""
    if not user.is_authenticated:
        raise Http404
    try:
        return Membership.objects.select_related("workspace", "workspace__plan").get(
            user=user, workspace__slug=slug
        )
    except Membership.DoesNotExist:
        raise Http404("No such workspace.") from None


def workspaces_for_user(user) -> list[Workspace]:  # noqa: ANN001
    return list(Workspace.objects.for_user(user).order_by("name"))
