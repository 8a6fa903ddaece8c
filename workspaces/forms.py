from django import forms

from .roles import Role


class RoleChangeForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
