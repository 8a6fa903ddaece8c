import re

from django import forms

from .models import AppAccessPolicy
from .roles import Role


class RoleChangeForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


_HOST = re.compile(r"(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
MAX_TRUSTED_DOMAINS = 50


class WorkspacePoliciesForm(forms.Form):
    """The owners' policies (SPEC §12): two-factor for every member, which apps members may
    connect, and the hosts whose apps are approved without asking (one per line)."""

    require_two_factor = forms.BooleanField(
        required=False, label="Require two-factor sign-in for every member"
    )
    app_access_policy = forms.ChoiceField(choices=AppAccessPolicy.choices, label="App access")
    trusted_app_domains = forms.CharField(
        required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 4}),
        label="Trusted app domains",
        help_text="Apps whose redirect URIs are all on one of these hosts are approved at once.",
    )

    def clean_trusted_app_domains(self) -> list[str]:
        hosts = [line.strip().lower().rstrip(".")
                 for line in self.cleaned_data["trusted_app_domains"].splitlines() if line.strip()]
        bad = [h for h in hosts if not _HOST.fullmatch(h)]
        if bad:
            raise forms.ValidationError(
                f"Not a host name: {bad[0][:80]}. Enter one host per line, like apps.example.com."
            )
        if len(hosts) > MAX_TRUSTED_DOMAINS:
            raise forms.ValidationError(f"At most {MAX_TRUSTED_DOMAINS} hosts.")
        return sorted(set(hosts))
