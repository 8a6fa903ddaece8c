from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from .roles import Action, role_allowed_actions
from .selectors import open_security_alerts, workspaces_for_user

# (label, URL name, the action the page needs) of the workspace Settings navigation, in order.
# A member sees only the pages their role may open; a page not installed does not appear.
SETTINGS_NAV = [
    ("API Keys", "apikeys:list", Action.VIEW_DASHBOARD),
    ("OAuth Apps", "oauth:app_list", Action.MANAGE_OAUTH_APPS),
    ("Connected apps", "oauth:workspace_connections", Action.MANAGE_OAUTH_APPS),
    ("Audit log", "audit:list", Action.READ_AUDIT_LOG),
    ("Usage", "apikeys:usage", Action.VIEW_DASHBOARD),
    ("Members", "workspaces:members", Action.VIEW_DASHBOARD),
    ("Plan", "workspaces:plan", Action.VIEW_DASHBOARD),
    ("API reference", "api_reference", Action.VIEW_DASHBOARD),
    ("Security", "workspaces:policies", Action.MANAGE_POLICIES),
    ("Notifications", "notifications:settings", Action.VIEW_DASHBOARD),
    ("Webhooks", "notifications:webhooks", Action.MANAGE_KEYS),
]


def workspaces(request: HttpRequest) -> dict:
    """The current workspace, the member's allowed actions (`can.manage_keys` …), the switcher and
    the Settings navigation, for every page rendered inside `/w/<slug>/`."""
    membership = getattr(request, "membership", None)
    if membership is None:
        return {}
    slug = membership.workspace.slug
    allowed = role_allowed_actions(membership.role)
    nav = []
    for label, name, action in SETTINGS_NAV:
        if action not in allowed:
            continue
        try:
            url = reverse(name, kwargs={"slug": slug})
        except NoReverseMatch:
            continue
        nav.append({"label": label, "url": url, "active": request.path.startswith(url)})
    return {
        "workspace": membership.workspace,
        "membership": membership,
        "can": {action.value: (action in allowed) for action in Action},
        "settings_nav": nav,
        "switcher_workspaces": workspaces_for_user(request.user),
        "security_alerts": open_security_alerts(membership.workspace)
        if getattr(membership, "has_open_security_alerts", False) else [],
    }
