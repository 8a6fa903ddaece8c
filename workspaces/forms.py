from __future__ import annotations

from typing import Any

from django import forms

from .caps import MAX_CREDITS, MAX_DAILY_CAP, CredentialBudget, Refill
from .credential_policy import ENVIRONMENTS, MAX_LIFETIME_DAYS, PolicyMode
from .models import AppAccessPolicy
from .roles import Role
from .services import MAX_TRUSTED_DOMAINS


class RoleChangeForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class WorkspacePoliciesForm(forms.Form):
    """The owners' policies (SPEC §12): two-factor for every member, and which OAuth apps members
    may connect (with the trusted domains whose apps need no approval), and the credential policy
    (workspaces.credential_policy)."""

    require_two_factor = forms.BooleanField(
        required=False, label="Require two-factor sign-in for every member"
    )
    app_access_policy = forms.ChoiceField(
        label="Apps members may connect",
        choices=AppAccessPolicy.choices,
        required=False,  # a form without it leaves the policy as it is
        widget=forms.RadioSelect,
        help_text="With admin approval, a member's consent waits on Settings → Connected apps "
        "until an admin or owner approves it; the app's tokens are refused until then.",
    )
    trusted_app_domains = forms.CharField(
        label="Trusted app domains",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text=f"One per line, at most {MAX_TRUSTED_DOMAINS}. With admin approval, apps whose "
        "every redirect URI is on one of these domains (or a subdomain) are approved "
        "automatically.",
    )

    def clean_trusted_app_domains(self) -> list[str]:
        return [line for line in self.cleaned_data["trusted_app_domains"].split() if line]
    # The credential policy (workspaces.credential_policy), as GitHub's token policies.
    key_max_lifetime_days = forms.TypedChoiceField(
        required=False, label="Maximum key lifetime", coerce=int, empty_value=None,
        choices=[("", "No maximum"), *((d, f"{d} days") for d in MAX_LIFETIME_DAYS)],
        help_text="New and rotated keys must expire within this many days.",
    )
    key_environments = forms.MultipleChoiceField(
        required=False, label="Environments keys may be created in",
        choices=list(ENVIRONMENTS.items()), widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: any environment.",
    )
    production_keys_need_ip_allowlist = forms.BooleanField(
        required=False, label="Production keys must have an IP allowlist"
    )
    oauth_collections_by_default = forms.BooleanField(
        required=False, label="OAuth access is limited to selected collections by default"
    )
    credential_policy_mode = forms.ChoiceField(
        required=False, label="Existing keys that break the policy", choices=PolicyMode.choices,
        widget=forms.RadioSelect, initial=PolicyMode.WARN,
        help_text="Keys are never revoked by a policy: an enforced one is refused with 403 "
                  "policy_violation until it is edited to comply.",
    )

    def clean_credential_policy_mode(self) -> str:
        # Not sent (an older form, a script): the mode stays as it is.
        return self.cleaned_data["credential_policy_mode"] or self.initial.get(
            "credential_policy_mode", PolicyMode.WARN
        )


class CredentialBudgetForm(forms.Form):
    """A key's or an OAuth grant's own budget (SPEC §3 "Per-key caps"); `workspaces.caps` has the
    rules, the `*_set_budget` services apply them."""

    daily_cap = forms.IntegerField(
        required=False, label="Daily request cap", min_value=1, max_value=MAX_DAILY_CAP,
        help_text="Requests per UTC day, on top of the workspace's budgets. Empty: no cap.",
        error_messages={"invalid": "Enter a whole number of requests, or leave it empty."},
    )
    credits = forms.IntegerField(
        required=False, label="Credits", min_value=1, max_value=MAX_CREDITS,
        help_text="One credit per request. Saving a new amount or refill sets the balance to it.",
        error_messages={"invalid": "Enter a whole number of credits, or leave it empty."},
    )
    credits_refill = forms.ChoiceField(
        required=False, label="Refill", choices=Refill.choices,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, label_suffix="", **kwargs)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("credits_refill") and data.get("credits") is None and not self.errors:
            self.add_error("credits_refill", "A refill needs a credit balance to refill to.")
        return data

    @classmethod
    def for_row(cls, row: CredentialBudget) -> CredentialBudgetForm:
        return cls(initial={
            "daily_cap": row.daily_cap, "credits": row.credits,
            "credits_refill": row.credits_refill,
        })

    def budget(self) -> dict[str, Any]:
        """The service's keywords."""
        return {
            "daily_cap": self.cleaned_data["daily_cap"],
            "credits": self.cleaned_data["credits"],
            "credits_refill": self.cleaned_data["credits_refill"] or "",
        }


class _DashboardForm(forms.Form):
    """Labels as the dashboard writes them: no trailing colon."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class InvitationForm(_DashboardForm):
    email = forms.EmailField(max_length=150, label="Email")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER, label="Role")


class PlanChangeForm(_DashboardForm):
    plan = forms.ChoiceField(label="Plan")

    def __init__(self, *args: object, plans: list, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["plan"].choices = [(plan.code, plan.name) for plan in plans]


class AcceptAsNewUserForm(_DashboardForm):
    password1 = forms.CharField(label="Password", widget=forms.PasswordInput(
        attrs={"autocomplete": "new-password"}), max_length=128, strip=False)
    password2 = forms.CharField(label="Password again", widget=forms.PasswordInput(
        attrs={"autocomplete": "new-password"}), max_length=128, strip=False)

    def clean(self) -> dict:
        data = super().clean()
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        return data
