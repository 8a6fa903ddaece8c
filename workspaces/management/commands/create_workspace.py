from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from core.context import Actor, RequestContext
from workspaces.models import Plan, Workspace
from workspaces.services import workspace_create

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser


def _new_user(email: str, password: str | None) -> AbstractBaseUser:
    """The owner's new account: with a password that Django's validators accept (given the user,
    so a password like the email is refused), or none usable until they set one."""
    user = get_user_model()(username=email, email=email)
    if password:
        password_validation.validate_password(password, user)
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean()
    user.save()
    return user


class Command(BaseCommand):
    help = "Create a workspace with an owner (the user is created when the email is new)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--owner", required=True, metavar="EMAIL")
        parser.add_argument(
            "--password",
            help="Password for a newly created owner (checked by the password validators); "
            "refused for an existing user.",
        )
        parser.add_argument("--plan", default="free", metavar="CODE")
        parser.add_argument("--name", help="Display name (default: the slug).")

    def handle(self, *args: Any, slug: str, owner: str, password: str | None, plan: str,
               name: str | None, **options: Any) -> None:
        try:
            plan_obj = Plan.objects.get(code=plan)
        except Plan.DoesNotExist:
            codes = ", ".join(Plan.objects.values_list("code", flat=True))
            raise CommandError(f"Unknown plan {plan!r}. Choose one of: {codes}.") from None
        if Workspace.objects.filter(slug=slug).exists():
            raise CommandError(f"A workspace with slug {slug!r} already exists.")
        User = get_user_model()
        existing = User.objects.filter(email__iexact=owner).first()
        if existing is not None and password:
            raise CommandError(
                f"{owner} already has an account; --password only sets a new owner's password. "
                f"Leave it out, or change the password with: manage.py changepassword "
                f"{existing.get_username()}"
            )
        try:
            with transaction.atomic():
                user = existing or _new_user(owner, password)
                workspace = workspace_create(
                    slug=slug,
                    name=name or slug,
                    owner=user,
                    plan=plan_obj,
                    actor=Actor.for_command("create_workspace"),
                    context=RequestContext.for_command("create_workspace"),
                )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"Created workspace {workspace.slug} ({plan_obj.code}) owned by {owner}.")
