"""Who did something and where it came from: the `Actor` and `RequestContext` every service
takes (`*, actor, context`), recorded by the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import models

if TYPE_CHECKING:
    from django.http import HttpRequest


class ActorType(models.TextChoices):
    USER = "user", "User"
    API_KEY = "api_key", "API key"
    OAUTH_APP = "oauth_app", "OAuth app"
    SYSTEM = "system", "System"


@dataclass(frozen=True, slots=True)
class Actor:
    type: str
    id: str = ""
    label: str = ""

    @classmethod
    def for_user(cls, user) -> Actor:
        if user is None or not getattr(user, "is_authenticated", False):
            return cls(ActorType.SYSTEM, "", "anonymous")
        return cls(ActorType.USER, str(user.pk), user.get_username())

    @classmethod
    def system(cls, label: str) -> Actor:
        return cls(ActorType.SYSTEM, "", label)


class Door:
    """Which door an action came through; recorded as the event's `metadata["door"]` (SPEC §8)."""

    DASHBOARD = "dashboard"
    API = "api"
    ADMIN = "admin"
    COMMAND = "command"


def door_of(request: HttpRequest) -> str:
    """Django admin's pages (any view in the `admin` URL namespace), the JSON API and OAuth
    endpoints (under /api/), or else the dashboard."""
    match = getattr(request, "resolver_match", None)
    if match is not None and "admin" in match.namespaces:
        return Door.ADMIN
    if request.path.startswith("/api/"):
        return Door.API
    return Door.DASHBOARD


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Where an action came from: the client's IP and user agent, or the command that ran it,
    and the door (`Door`); an empty door is not recorded."""

    ip: str | None = None
    user_agent: str = ""
    door: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest, *, door: str | None = None) -> RequestContext:
        return cls(
            ip=request.META.get("REMOTE_ADDR") or None,
            user_agent=request.headers.get("User-Agent", "")[:512],
            door=door or door_of(request),
        )

    @classmethod
    def for_command(cls, name: str) -> RequestContext:
        return cls(ip=None, user_agent=f"manage.py {name}", door=Door.COMMAND)
