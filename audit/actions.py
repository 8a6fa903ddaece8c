"""The catalogue of audit actions (SPEC §8): what the filters offer and accept.

A service that records a new action adds it here, so the dashboard's action filter offers it and
the selector accepts it (an unknown action name is a form error / JSON 400, not an empty page).
"""

from __future__ import annotations

# Recorded on a workspace's chain, in the order the dashboard's filter lists them.
WORKSPACE_ACTIONS: dict[str, str] = {
    "key.created": "API key created",
    "key.rotated": "API key rotated",
    "key.paused": "API key paused",
    "key.resumed": "API key resumed",
    "key.revoked": "API key revoked",
    "key.rate_limit_changed": "API key rate limit changed",
    "key.updated": "API key changed",
    "key.new_network": "API key used from a new network",
    "oauth_app.created": "OAuth app created",
    "oauth_app.updated": "OAuth app changed",
    "oauth_app.secret_rotated": "OAuth app secret rotated",
    "oauth_app.deleted": "OAuth app deleted",
    "oauth.consent_granted": "OAuth consent granted",
    "oauth.grant_updated": "OAuth grant changed",
    "oauth.token_revoked": "OAuth token revoked",
    "oauth.refresh_token_reused": "OAuth refresh token reused",
    "oauth.authorization_code_reused": "OAuth authorization code reused",
    # SPEC §12: an admin's decisions on members' grants (Settings → Connected apps).
    "oauth.connection_approved": "OAuth app approved",
    "oauth.connection_denied": "OAuth app denied",
    "oauth.connection_revoked": "OAuth app revoked by an admin",
    "webhook.created": "Webhook endpoint created",
    "webhook.updated": "Webhook endpoint changed",
    "webhook.secret_rotated": "Webhook signing secret rotated",
    "webhook.deleted": "Webhook endpoint deleted",
    "webhook.disabled": "Webhook endpoint disabled after failures",
    "member.added": "Member added",
    "member.role_changed": "Member role changed",
    "member.removed": "Member removed",
    "member.invited": "Member invited",
    "member.invitation_resent": "Invitation resent",
    "member.invitation_cancelled": "Invitation cancelled",
    "member.invitation_accepted": "Invitation accepted",
    "plan.changed": "Plan changed",
    "plan.overage_enabled": "Overage turned on",
    "plan.overage_disabled": "Overage turned off",
    "policy.changed": "Workspace policy changed",
    "workspace.created": "Workspace created",
    "workspace.updated": "Workspace renamed",
    # passports.services, through the API (actor: the API key or OAuth app).
    "passport.created": "Passport created",
    "passport.updated": "Passport updated",
    "passport.deleted": "Passport deleted",
    "collection.created": "Collection created",
    "collection.updated": "Collection renamed",
    "collection.deleted": "Collection deleted",
    "audit.pruned": "Old audit events pruned",
    "audit.resealed": "Audit chain head re-sealed",
}

# Recorded on the workspace-less ("global") chain.
GLOBAL_ACTIONS: dict[str, str] = {
    "user.logged_in": "Signed in",
    "user.login_failed": "Sign-in failed",
    "user.reauthenticated": "Confirmed identity for a sensitive action",
    "user.two_factor_enabled": "Two-factor sign-in turned on",
    "user.two_factor_disabled": "Two-factor sign-in turned off",
    "user.recovery_codes_regenerated": "Recovery codes replaced",
    "user.recovery_code_used": "Recovery code used",
    # Accounts, changed by ops in Django admin (workspaces.services): a user's memberships are
    # removed first, each as member.removed on its workspace's chain.
    "user.deactivated": "User deactivated",
    "user.reactivated": "User reactivated",
    "user.staff_changed": "User's staff access changed",
    "user.deleted": "User deleted",
    # Plans are shared by workspaces: edited by ops in Django admin (workspaces.services).
    "plan.created": "Plan created",
    "plan.updated": "Plan limits changed",
    "plan.deleted": "Plan deleted",
    "audit.pruned": "Old audit events pruned",
    "audit.resealed": "Audit chain head re-sealed",
}

ACTIONS: dict[str, str] = {**WORKSPACE_ACTIONS, **GLOBAL_ACTIONS}


def is_known_action(action: str) -> bool:
    return action in ACTIONS
