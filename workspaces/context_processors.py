from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from .roles import Action, role_allowed_actions

# (label, URL name) of the workspace Settings navigation, in order. A page that is not installed
# yet simply does not appear.
SETTINGS_NAV = [
    ("API Keys", "apikeys:list"),
    ("OAuth Apps", "oauth:app_list"),
    ("Audit log", "audit:list"),
    ("Usage", "apikeys:usage"),
    ("Members", "workspaces:members"),
]


def workspaces(request: HttpRequest) -> dict:
    """The current workspace, the member's allowed actions (`can.manage_keys` …), the switcher and
    the Settings navigation, for every page rendered inside `/w/<slug>/`."""
    membership = getattr(request, "membership", None)
    if membership is None:
        return {}
    from .selectors import workspaces_for_user

    slug = membership.workspace.slug
    nav = []
    for label, name in SETTINGS_NAV:
        try:
            url = reverse(name, kwargs={"slug": slug})
        except NoReverseMatch:
            continue
        nav.append({"label": label, "url": url, "active": request.path.startswith(url)})
    allowed = role_allowed_actions(membership.role)
    return {
        "workspace": membership.workspace,
        "membership": membership,
        "can": {action.value: (action in allowed) for action in Action},
        "settings_nav": nav,
        "switcher_workspaces": workspaces_for_user(request.user),
    }
