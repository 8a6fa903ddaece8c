from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apikeys.models import Environment
from apikeys.services import apikey_create
from core.context import Actor, RequestContext
from workspaces.models import Workspace
from workspaces.scopes import api_key_scopes, default_key_scope_names


def parse_expiry(value: str) -> datetime:
    """ISO 8601 date or date-time; without an offset it is UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"--expires {value!r} is not an ISO 8601 date or date-time "
            "(e.g. 2030-01-31 or 2030-01-31T12:00:00Z)."
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def split_list(value: str | None) -> list[str] | None:
    """`a,b` or `a b` → ["a", "b"]; None stays None (the option was not given)."""
    if value is None:
        return None
    return [v for v in re.split(r"[\s,]+", value) if v]


def scopes_help() -> str:
    return "Valid scopes: " + "; ".join(
        f"{s.name} ({s.description.rstrip('.')})" for s in api_key_scopes()
    ) + "."


class Command(BaseCommand):
    help = (
        "Create an API key in a workspace and print its token, and only the token, on stdout. "
        "The token is not stored and cannot be shown again."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.epilog = scopes_help()
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("workspace", help="The workspace's slug.")
        parser.add_argument("--name", required=True, help="What uses the key (1–100 characters).")
        parser.add_argument(
            "--scopes", metavar="A,B",
            help="Comma-separated scopes (default: every read scope); listed below.",
        )
        parser.add_argument(
            "--allowed-ips", metavar="CIDR,CIDR", dest="allowed_ips",
            help="Only accept the key from these addresses or CIDR ranges (default: any).",
        )
        parser.add_argument(
            "--env", choices=Environment.values, default=None,
            help="The key's environment (default: this deployment's GATEHOUSE_ENVIRONMENT).",
        )
        parser.add_argument("--expires", metavar="ISO", help="Expiry, e.g. 2030-01-31T12:00Z.")
        parser.add_argument("--note", default="", help="A note kept with the key.")
        parser.add_argument(
            "--rate-limit", type=int, metavar="N", dest="rate_limit",
            help="Requests per minute for this key (default: no per-key limit).",
        )
        parser.add_argument(
            "--collections", metavar="COL_A,COL_B",
            help="Restrict the key to these collections (col_… ids; an empty value restricts "
                 "it to none). Default: all passports.",
        )
        parser.add_argument(
            "--daily-cap", type=int, metavar="N", dest="daily_cap",
            help="The key's own cap of requests per UTC day (default: none).",
        )
        parser.add_argument(
            "--credits", type=int, metavar="N",
            help="The key's credit balance, one credit per request (default: none).",
        )
        parser.add_argument(
            "--refill", choices=["daily", "monthly"], default="",
            help="Refill the credits to --credits every day or month at 00:00 UTC "
                 "(default: never).",
        )

    def handle(self, *args: Any, workspace: str, name: str, scopes: str | None, env: str | None,
               expires: str | None, note: str, rate_limit: int | None,
               collections: str | None = None, allowed_ips: str | None = None,
               daily_cap: int | None = None, credits: int | None = None, refill: str = "",
               **options: Any) -> None:
        ws = Workspace.objects.filter(slug=workspace).first()
        if ws is None:
            raise CommandError(f"No workspace with slug {workspace!r}.")
        scope_list = (
            [s.strip() for s in scopes.split(",") if s.strip()]
            if scopes is not None else default_key_scope_names()
        )
        try:
            _key, token = apikey_create(
                workspace=ws,
                name=name,
                note=note,
                scopes=scope_list,
                environment=env or settings.GATEHOUSE_ENVIRONMENT,
                expires_at=parse_expiry(expires) if expires else None,
                rate_limit_per_minute=rate_limit,
                allowed_ips=split_list(allowed_ips),
                collections=split_list(collections),
                daily_cap=daily_cap,
                credits=credits,
                credits_refill=refill,
                actor=Actor.for_command("create_api_key"),
                context=RequestContext.for_command("create_api_key"),
            )
        except ValidationError as exc:
            raise CommandError(" ".join(_named(exc))) from None
        self.stdout.write(token)


def _named(exc: ValidationError) -> list[str]:
    """Each message with the option it is about, so `--daily-cap 0` says which number is wrong."""
    if not hasattr(exc, "error_dict"):
        return exc.messages
    options = {"daily_cap": "--daily-cap", "credits": "--credits", "credits_refill": "--refill"}
    return [
        f"{options[field]}: {message}" if field in options else message
        for field, messages in exc.message_dict.items() for message in messages
    ]
