"""What apps above `workspaces` add to its writes, without `workspaces` importing them.

A lower app must not import a higher one (SPEC §1), yet removing a member must end what the
member holds in apps above — their OAuth grants in that workspace. So `workspaces` owns this
small, explicit list; a higher app registers its callable in its AppConfig.ready (oauth does),
and `membership_remove` calls each inside its own transaction: the removal and everything the
hooks end commit together or not at all. No Django signals: the flow stays visible here.

The workspace Overview lists the notices apps above add (`on_overview_notices`).

Likewise `user_delete` calls the user-deleting hooks after the user's memberships are gone and
before the row is: what apps above keep that must outlive the account is let go of there (oauth
detaches the apps the user registered, which the database would otherwise delete with them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from core.context import Actor, RequestContext

    from .models import Membership


class UserDeletingHook(Protocol):
    def __call__(self, *, user: object, actor: Actor, context: RequestContext) -> None: ...


class MembershipRemovedHook(Protocol):
    def __call__(
        self, *, membership: Membership, actor: Actor, context: RequestContext
    ) -> None: ...


class OverviewNoticesHook(Protocol):
    def __call__(self, *, membership: Membership) -> list[dict[str, str]]: ...


_membership_removed: list[Callable[..., None]] = []
_overview_notices: list[Callable[..., list[dict[str, str]]]] = []
_user_deleting: list[Callable[..., None]] = []


def on_membership_removed(hook: MembershipRemovedHook) -> MembershipRemovedHook:
    """Run `hook` whenever a member is removed (registering the same callable twice is a no-op)."""
    if hook not in _membership_removed:
        _membership_removed.append(hook)
    return hook


def membership_removed_hooks() -> tuple[MembershipRemovedHook, ...]:
    return tuple(_membership_removed)


def on_user_deleting(hook: UserDeletingHook) -> UserDeletingHook:
    """Run `hook` just before a user account is deleted (registering twice is a no-op)."""
    if hook not in _user_deleting:
        _user_deleting.append(hook)
    return hook


def user_deleting_hooks() -> tuple[UserDeletingHook, ...]:
    return tuple(_user_deleting)


def on_overview_notices(hook: OverviewNoticesHook) -> OverviewNoticesHook:
    """Add what the workspace Overview shows a member as "needs your attention": the hook gets
    the viewer's membership and returns notices `{"text": …, "url": …}` (oauth: apps awaiting
    approval, for admins). Registering twice is a no-op."""
    if hook not in _overview_notices:
        _overview_notices.append(hook)
    return hook


def overview_notices(*, membership: Membership) -> list[dict[str, str]]:
    return [notice for hook in _overview_notices for notice in hook(membership=membership)]
@dataclass(frozen=True, slots=True)
class NoncompliantCredential:
    """A credential that breaks its workspace's credential policy, for the Security page."""

    label: str
    url: str
    reasons: tuple[str, ...]


_noncompliant: list[Callable[..., list[NoncompliantCredential]]] = []


def on_noncompliant_credentials(
    hook: Callable[..., list[NoncompliantCredential]],
) -> Callable[..., list[NoncompliantCredential]]:
    """Register a lister of credentials that break the workspace's credential policy
    (`hook(workspace=…, now=…)`; apikeys registers its keys)."""
    if hook not in _noncompliant:
        _noncompliant.append(hook)
    return hook


def noncompliant_credentials(*, workspace: object, now: object) -> list[NoncompliantCredential]:
    return [found for hook in _noncompliant for found in hook(workspace=workspace, now=now)]
