"""`GET /api/v1/audit-events` (SPEC §4, §8): the workspace's audit log, newest first."""

from __future__ import annotations

from django.http import JsonResponse

from apikit.endpoints import api_endpoint
from apikit.principal import ApiRequest
from apikit.requests import iso, list_response, parse_timestamp, read_limit, read_query

from .models import AuditEvent
from .selectors import audit_event_page


def audit_event_json(event: AuditEvent) -> dict:
    return {
        "id": event.public_id,
        "action": event.action,
        "actor": {"type": event.actor_type, "id": event.actor_id, "label": event.actor_label},
        "target": {
            "type": event.target_type, "id": event.target_id, "label": event.target_label,
        },
        "ip": event.ip,
        "user_agent": event.user_agent,
        "metadata": event.metadata,
        "created_at": iso(event.created_at),
    }


@api_endpoint(scope="audit:read")
def list_audit_events(request: ApiRequest) -> JsonResponse:
    query = read_query(
        request, allowed={"limit", "cursor", "action", "actor", "since", "until"}
    )
    since = parse_timestamp(query["since"], "since") if "since" in query else None
    until = parse_timestamp(query["until"], "until") if "until" in query else None
    events, next_cursor = audit_event_page(
        workspace=request.workspace,
        action=query.get("action") or None,
        actor=query.get("actor") or None,
        since=since,
        until=until,
        cursor=query.get("cursor") or None,
        limit=read_limit(query),
    )
    return list_response([audit_event_json(e) for e in events], next_cursor)
