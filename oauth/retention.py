"""OAuth's retention step for `manage.py prune` (registered in `OauthConfig.ready`)."""

from __future__ import annotations

from datetime import datetime

from .services import oauth_prune


def oauth_prune_step(now: datetime) -> str:
    """Dynamically registered OAuth clients nobody connected within a week; expired codes and
    tokens (django-oauth-toolkit's `clear_expired`)."""
    deleted = oauth_prune(now=now)
    return f"oauth: deleted {deleted} unused dynamically registered clients and expired tokens"
