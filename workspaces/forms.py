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
