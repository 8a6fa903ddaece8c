from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apikeys.keycache import PENDING_WARNING, keycache_pending
from apikeys.models import ApiKey
from apikeys.services import apikey_revoke
from core.context import Actor, RequestContext

# Exit status when the key is revoked but Redis could not be told (1 is "not revoked").
PENDING_EXIT_STATUS = 3


class Command(BaseCommand):
    help = (
        "Revoke an API key by its id (key_…): permanent and immediate. Exit status 3: revoked, "
        "but Redis was unreachable, so a server that cached the key may accept it for up to 30 s."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key_id", help="The key's public id, as shown in Django admin (key_…).")

    def handle(self, *args: Any, key_id: str, **options: Any) -> None:
        key = ApiKey.objects.select_related("workspace").filter(public_id=key_id).first()
        if key is None:
            raise CommandError(f"No API key with id {key_id!r}.")
        try:
            apikey_revoke(
                key=key, actor=Actor.for_command("revoke_api_key"),
                context=RequestContext.for_command("revoke_api_key"),
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(
            f"Revoked {key.public_id} “{key.name}” ({key.display_hint}) in {key.workspace.slug}."
        )
        if keycache_pending(key):
            # The revocation is saved; the exit status tells a script that it has not reached
            # every process yet (this command's own retries end with it).
            raise CommandError(PENDING_WARNING, returncode=PENDING_EXIT_STATUS)
