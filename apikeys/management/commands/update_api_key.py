from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apikeys.keycache import PENDING_WARNING, keycache_pending
from apikeys.models import ApiKey
from apikeys.services import apikey_set_budget, apikey_update
from core.context import Actor, RequestContext
from workspaces.caps import budget_errors

from .create_api_key import parse_expiry, scopes_help, split_list

PENDING_EXIT_STATUS = 3


class Command(BaseCommand):
    help = (
        "Edit an API key by its id (key_…): only the options given change, through the same "
        "audited service as the dashboard (key.updated); the next request on every server sees "
        "the change. Exit status 3: saved, but Redis was unreachable, so a server that cached "
        "the key may use its old settings for up to 30 s."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.epilog = scopes_help()
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key_id", help="The key's public id (key_…).")
        parser.add_argument("--name", help="A new name (1–100 characters).")
        parser.add_argument("--note", help="A new note (empty to clear it).")
        parser.add_argument("--scopes", metavar="A,B", help="Replace the scopes (listed below).")
        parser.add_argument(
            "--allowed-ips", metavar="CIDR,CIDR", dest="allowed_ips",
            help="Replace the allowed addresses or CIDR ranges (empty: any address).",
        )
        parser.add_argument(
            "--rate-limit", metavar="N", dest="rate_limit",
            help="Requests per minute (empty or 'none': no per-key limit).",
        )
        expiry = parser.add_mutually_exclusive_group()
        expiry.add_argument("--expires", metavar="ISO", help="A new expiry, e.g. 2030-01-31.")
        expiry.add_argument("--no-expiry", action="store_true", help="The key never expires.")
        reach = parser.add_mutually_exclusive_group()
        reach.add_argument(
            "--collections", metavar="COL_A,COL_B",
            help="Restrict the key to these collections (empty: to none).",
        )
        reach.add_argument(
            "--all-passports", action="store_true", help="Let the key reach every passport.",
        )

        parser.add_argument(
            "--daily-cap", metavar="N|none", dest="daily_cap",
            help="The key's own cap of requests per UTC day ('none' removes it).",
        )
        parser.add_argument(
            "--credits", metavar="N|none",
            help="Set the key's credit balance to N ('none' removes it).",
        )
        parser.add_argument(
            "--refill", choices=["daily", "monthly", "none"],
            help="Refill the credits every day or month at 00:00 UTC ('none': never).",
        )

    def handle(self, *args: Any, key_id: str, **options: Any) -> None:
        key = ApiKey.objects.select_related("workspace").filter(public_id=key_id[:64]).first()
        if key is None:
            raise CommandError(f"No API key with id {key_id[:64]!r}.")
        changes: dict[str, Any] = {}
        for option in ("name", "note"):
            if options[option] is not None:
                changes[option] = options[option]
        if options["scopes"] is not None:
            changes["scopes"] = split_list(options["scopes"])
        if options["allowed_ips"] is not None:
            changes["allowed_ips"] = split_list(options["allowed_ips"])
        if options["rate_limit"] is not None:
            raw = options["rate_limit"].strip().lower()
            if raw in ("", "none"):
                changes["rate_limit_per_minute"] = None
            elif raw.isascii() and raw.isdigit() and len(raw) <= 9:
                changes["rate_limit_per_minute"] = int(raw)
            else:
                raise CommandError("--rate-limit must be a whole number, or 'none'.")
        if options["expires"]:
            changes["expires_at"] = parse_expiry(options["expires"])
        elif options["no_expiry"]:
            changes["expires_at"] = None
        if options["collections"] is not None:
            changes["collections"] = split_list(options["collections"])
        elif options["all_passports"]:
            changes["collections"] = None
        budget = _budget(key, options)
        if not changes and budget is None:
            raise CommandError("Nothing to change: give at least one option (see --help).")
        if budget is not None and (errors := budget_errors(
            daily_cap=budget["daily_cap"], credits=budget["credits"],
            refill=budget["credits_refill"],
        )):  # checked first, so a bad budget saves nothing else either
            names = {"daily_cap": "--daily-cap", "credits": "--credits",
                     "credits_refill": "--refill"}
            raise CommandError(" ".join(f"{names[f]}: {m}" for f, m in errors.items()))
        actor = Actor.for_command("update_api_key")
        context = RequestContext.for_command("update_api_key")
        try:
            if changes:
                key = apikey_update(key=key, changes=changes, actor=actor, context=context)
            if budget is not None:
                key = apikey_set_budget(key=key, **budget, actor=actor, context=context)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(
            f"Saved {key.public_id} “{key.name}” ({key.display_hint}) in {key.workspace.slug}."
        )
        if keycache_pending(key):
            raise CommandError(PENDING_WARNING, returncode=PENDING_EXIT_STATUS)


def _count(option: str, raw: str) -> int | None:
    raw = raw.strip().lower()
    if raw in ("", "none"):
        return None
    if raw.isascii() and raw.isdigit() and len(raw) <= 15:
        return int(raw)
    raise CommandError(f"--{option} must be a whole number, or 'none'.")


def _budget(key: ApiKey, options: dict[str, Any]) -> dict[str, Any] | None:
    """The key's budget with the options given applied (None: no budget option given)."""
    if options["daily_cap"] is None and options["credits"] is None and options["refill"] is None:
        return None
    refill = options["refill"]
    return {
        "daily_cap": key.daily_cap if options["daily_cap"] is None
        else _count("daily-cap", options["daily_cap"]),
        "credits": key.credits if options["credits"] is None
        else _count("credits", options["credits"]),
        "credits_refill": key.credits_refill if refill is None else ("" if refill == "none"
                                                                     else refill),
    }
