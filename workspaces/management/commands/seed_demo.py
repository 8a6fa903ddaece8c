from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from core.context import Actor, RequestContext
from workspaces.models import Plan, Workspace
from workspaces.roles import Role
from workspaces.services import membership_add, workspace_create

DEMO_SLUG = "demo"
DEMO_OWNER = "owner@demo.gatehouse.test"
DEMO_PASSWORD = "gatehouse-demo"  # a development login, printed on purpose


class Command(BaseCommand):
    help = "Create the demo workspace and logins (idempotent) and print the owner's login."

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        context = RequestContext.for_command("seed_demo")
        with transaction.atomic():
            if not Workspace.objects.filter(slug=DEMO_SLUG).exists():
                # The demo owner is also ops staff, so Django admin can be tried with one login.
                owner = User.objects.create_superuser(
                    username=DEMO_OWNER, email=DEMO_OWNER, password=DEMO_PASSWORD
                )
                workspace = workspace_create(
                    slug=DEMO_SLUG,
                    name="Demo Workspace",
                    owner=owner,
                    plan=Plan.objects.get(code="basic"),
                    actor=Actor.for_command("seed_demo"), context=context,
                )
                for role in (Role.ADMIN, Role.EDITOR, Role.VIEWER):
                    email = f"{role.value}@demo.gatehouse.test"
                    user = User.objects.create_user(
                        username=email, email=email, password=DEMO_PASSWORD
                    )
                    membership_add(
                        workspace=workspace, user=user, role=role, actor=Actor.for_user(owner),
                        context=context,
                    )
                workspace_create(
                    slug="acme", name="Acme Labs", owner=owner,
                    plan=Plan.objects.get(code="free"), actor=Actor.for_command("seed_demo"),
                    context=context,
                )
        self.stdout.write(
            self.style.SUCCESS(
                "Demo workspace ready. Log in at http://127.0.0.1:8000/accounts/login/ with\n"
                f"  email: {DEMO_OWNER}\n  password: {DEMO_PASSWORD}\n"
                "(admin@, editor@ and viewer@demo.gatehouse.test use the same password.)"
            )
        )
