from django import forms

from .models import AppAccessPolicy
from .roles import Role
from .services import MAX_TRUSTED_DOMAINS


class RoleChangeForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class WorkspacePoliciesForm(forms.Form):
    """The owners' policies (SPEC §12): two-factor for every member, and which OAuth apps members
    may connect (with the trusted domains whose apps need no approval)."""

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
