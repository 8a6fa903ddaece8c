"""Who did something and where it came from: the `Actor` and `RequestContext` every service
takes (`*, actor, context`), recorded by the audit log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db import models

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser
    from django.http import HttpRequest


class ActorType(models.TextChoices):
    USER = "user", "User"
    API_KEY = "api_key", "API key"
    OAUTH_APP = "oauth_app", "OAuth app"
    SYSTEM = "system", "System"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a user, an API key, an OAuth app or the system. `type`, `id` and `label` are what
    the audit log records; `user` is the signed-in person behind a user actor (or the person an
    OAuth app acts for), for the services that stamp `created_by`/`revoked_by`."""

    type: str
    id: str = ""
    label: str = ""
    user: AbstractBaseUser | None = field(default=None, compare=False, repr=False)

    @classmethod
    def for_user(cls, user: AbstractBaseUser | AnonymousUser | None) -> Actor:
        if user is None or not user.is_authenticated:
            return cls(ActorType.SYSTEM, "", "anonymous")
        return cls(ActorType.USER, str(user.pk), user.get_username(), user=user)

    @classmethod
    def system(cls, label: str) -> Actor:
        return cls(ActorType.SYSTEM, "", label)

    @classmethod
    def for_command(cls, name: str) -> Actor:
        """A management command: the system, labelled as the command line ran it."""
        return cls.system(f"manage.py {name}")


class Door:
    """Which door an action came through; recorded as the event's `metadata["door"]` (SPEC §8)."""

    DASHBOARD = "dashboard"
    API = "api"
    ADMIN = "admin"
    COMMAND = "command"
    MCP = "mcp"  # a tool call of the MCP server (SPEC §14), which names the tool too


def door_of(request: HttpRequest) -> str:
    """Django admin's pages (any view in the `admin` URL namespace), the JSON API and OAuth
    endpoints (under /api/), or else the dashboard; an MCP tool call (the request the MCP server
    hands the API's view, marked with `mcp_tool`) is the MCP door."""
    if getattr(request, "mcp_tool", ""):
        return Door.MCP
    match = getattr(request, "resolver_match", None)
    if match is not None and "admin" in match.namespaces:
        return Door.ADMIN
    if request.path.startswith("/api/"):
        return Door.API
    return Door.DASHBOARD


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Where an action came from: the client's IP and user agent, or the command that ran it,
    the door (`Door`) and, for the API, the request id the client was sent as `X-Request-Id`;
    for the MCP door, the tool called. An empty door, request id or tool is not recorded."""

    ip: str | None = None
    user_agent: str = ""
    door: str = ""
    request_id: str = ""
    tool: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest, *, door: str | None = None) -> RequestContext:
        return cls(
            ip=request.META.get("REMOTE_ADDR") or None,
            user_agent=request.headers.get("User-Agent", "")[:512],
            door=door or door_of(request),
            request_id=getattr(request, "request_id", ""),
            tool=getattr(request, "mcp_tool", ""),
        )

    @classmethod
    def for_command(cls, name: str) -> RequestContext:
        return cls(ip=None, user_agent=f"manage.py {name}", door=Door.COMMAND)
