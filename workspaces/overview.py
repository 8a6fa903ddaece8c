"""The Overview page's "Needs attention" (issue 15 point 8): what a member should look at first.

The overview lives in `workspaces`, but most of what needs attention belongs to apps above it
(keys expiring soon or unused, in `apikeys`). As with `workspaces.hooks`, those apps register a
callable in their AppConfig.ready instead of `workspaces` importing them. Each callable takes the
workspace and returns items `{"level": "danger"|"warning"|"info", "text": str, "url": str,
"link": str}`; the page shows them in level order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from django.urls import reverse

from .selectors import open_security_alerts

if TYPE_CHECKING:
    from .models import Workspace

AttentionSource = Callable[["Workspace"], list[dict]]
_sources: list[AttentionSource] = []
LEVELS = {"danger": 0, "warning": 1, "info": 2}


def on_overview_attention(source: AttentionSource) -> AttentionSource:
    if source not in _sources:
        _sources.append(source)
    return source


def _security_alerts(workspace: Workspace) -> list[dict]:
    url = reverse("apikeys:list", kwargs={"slug": workspace.slug})
    return [
        {"level": "danger", "text": f"{alert.subject} was reported as leaked and revoked on "
                                    f"{alert.created_at:%Y-%m-%d %H:%M} UTC: replace it "
                                    "wherever it is used.",
         "url": url, "link": "API Keys"}
        for alert in open_security_alerts(workspace)
    ]


def overview_attention(workspace: Workspace) -> list[dict]:
    items = _security_alerts(workspace)
    for source in _sources:
        items.extend(source(workspace))
    return sorted(items, key=lambda item: LEVELS.get(item["level"], 9))
