from django import forms

from .roles import Role


class RoleChangeForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class WorkspacePoliciesForm(forms.Form):
    """The owners' policies (SPEC §12): two-factor for every member. (The app access policy is
    stored but not offered until the gateway enforces it.)"""

    require_two_factor = forms.BooleanField(
        required=False, label="Require two-factor sign-in for every member"
    )
