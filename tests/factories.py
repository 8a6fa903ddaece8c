import importlib

import factory
from django.apps import apps
from django.contrib.auth import get_user_model

from apikeys.models import ApiKey
from apikeys.services import apikey_create
from core.context import Actor, RequestContext
from workspaces.models import Membership, Plan, Workspace
from workspaces.roles import Role

PASSWORD = "correct-horse-battery-staple"
ALL_KEY_SCOPES = ["audit:read", "keys:read", "passports:read", "passports:write"]


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    username = factory.LazyAttribute(lambda o: o.email)
    # MD5 in tests (settings override in conftest) keeps hashing out of the suite's runtime.
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


def plan_named(code: str) -> Plan:
    """The seeded plan `code`. Transactional tests flush the database, data migrations included,
    so the migration's seed runs again when the rows are gone."""
    plan = Plan.objects.filter(code=code).first()
    if plan is None:
        importlib.import_module("workspaces.migrations.0002_seed_plans").seed_plans(apps, None)
        plan = Plan.objects.get(code=code)
    return plan


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    slug = factory.Sequence(lambda n: f"ws-{n}")
    name = factory.Sequence(lambda n: f"Workspace {n}")
    plan = factory.LazyFunction(lambda: plan_named("free"))


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    workspace = factory.SubFactory(WorkspaceFactory)
    role = Role.VIEWER


def by(user: object | None = None) -> dict:
    """The `actor` and `context` keywords of a service call made by `user` (by the system when
    None), from no particular door: `apikey_revoke(key=key, **by(admin))`."""
    actor = Actor.for_user(user) if user is not None else Actor.system("test")
    return {"actor": actor, "context": RequestContext()}


def key_with_token(
    workspace: Workspace, scopes: list[str] | None = None, **kwargs
) -> tuple[ApiKey, str]:
    """An API key and its token, created through the service as the dashboard does: all scopes,
    development environment (like the test server), named "Integration", unless told otherwise
    (`name=`, `environment=`, `actor=`, any other `apikey_create` argument)."""
    kwargs.setdefault("environment", "development")
    kwargs.setdefault("name", "Integration")
    kwargs.setdefault("actor", Actor.system("test"))
    kwargs.setdefault("context", RequestContext())
    return apikey_create(
        workspace=workspace, scopes=ALL_KEY_SCOPES if scopes is None else scopes, **kwargs
    )
