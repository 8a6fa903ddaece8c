"""A stand-in verifier for routing tests: any `zz_` token is a caller of workspace `acme`."""

from apikit.principal import AuthFailure, Principal
from workspaces.models import Workspace


def always_acme(token: str, *, ip: str | None, resource: str) -> Principal | AuthFailure:
    workspace = Workspace.objects.select_related("plan").get(slug="acme")
    return Principal(
        kind="oauth", id="zz", name="Test verifier", workspace=workspace,
        scopes=frozenset({"passports:read"}),
    )
