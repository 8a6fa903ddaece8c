"""Dashboard forms for API keys. They only parse input into typed values; what is allowed (scopes,
expiry in the future, CIDRs, plan limits) is decided by the services, whose field errors the views
attach back to these forms under the same names."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings

from workspaces.scopes import api_key_scopes, default_key_scope_names

from .models import Environment

OVERLAP_CHOICES = [
    ("now", "Immediately — the old key stops now"),
    ("1h", "1 hour"),
    ("24h", "24 hours"),
    ("7d", "7 days"),
]


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100, widget=forms.TextInput(attrs={"autofocus": True}),
        help_text="What uses this key, e.g. “Billing sync” or “CI deploys”.",
        error_messages={"required": "Give the key a name."},
    )
    note = forms.CharField(
        required=False, max_length=1000, widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Optional: who owns it, where it is stored.",
    )
    scopes = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one scope."},
    )
    environment = forms.ChoiceField(choices=Environment.choices)
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Optional. After this moment the key is refused with key_expired.",
    )
    rate_limit_per_minute = forms.IntegerField(
        required=False, label="Rate limit (requests per minute)",
        help_text="Optional. Empty means the plan's limits only.",
    )
    allowed_ips = forms.CharField(
        required=False, label="Allowed IPs", widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Optional. Addresses or CIDR ranges, one per line or comma-separated; "
        "requests from anywhere else are refused.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, label_suffix="", **kwargs)
        if self.is_bound:
            # Re-rendered with errors: focus goes to the first field in error (see
            # autofocus_first_error), never back to the name while the user types elsewhere.
            self.fields["name"].widget.attrs.pop("autofocus", None)
        self.scope_registry = api_key_scopes()
        self.fields["scopes"].choices = [(s.name, s.name) for s in self.scope_registry]
        self.fields["scopes"].initial = default_key_scope_names()
        self.fields["environment"].initial = settings.GATEHOUSE_ENVIRONMENT
        self.fields["environment"].help_text = (
            f"This deployment accepts {settings.GATEHOUSE_ENVIRONMENT} keys only."
        )

    def scope_options(self) -> list[dict]:
        """Each scope with its one-line description and whether its box is ticked."""
        chosen = set(self["scopes"].value() or [])
        return [
            {"name": s.name, "description": s.description, "checked": s.name in chosen,
             "read_only": s.read_only}
            for s in self.scope_registry
        ]

    def autofocus_first_error(self) -> None:
        for name, field in self.fields.items():
            if name in self.errors:
                field.widget.attrs["autofocus"] = True
                return

    def clean_allowed_ips(self) -> list[str]:
        """One per line or comma-separated; the service validates and normalises each."""
        return [v for v in re.split(r"[\s,]+", self.cleaned_data["allowed_ips"]) if v]


class ApiKeyRotateForm(forms.Form):
    overlap = forms.ChoiceField(
        choices=OVERLAP_CHOICES, initial="24h", widget=forms.RadioSelect,
        label="Keep the old key working for",
        error_messages={"required": "Choose how long the old key keeps working."},
    )


class ApiKeyRateLimitForm(forms.Form):
    rate_limit_per_minute = forms.IntegerField(
        required=False, label="Requests per minute",
        help_text="Empty means no per-key limit: only the plan's daily budgets apply.",
        error_messages={
            "invalid": "Enter a whole number of requests per minute, or leave it empty."
        },
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, label_suffix="", **kwargs)


class ApiKeyCollectionsForm(forms.Form):
    """Which passports a key reaches (SPEC §11): all, or only the chosen collections."""

    reach = forms.ChoiceField(
        choices=[("all", "All passports"), ("selected", "Only selected collections")],
        widget=forms.RadioSelect, label="Passports this key reaches",
    )
    collections = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label="Collections",
        help_text="With no collection chosen, the key reaches no passport.",
    )

    def __init__(
        self, *args: Any, collection_choices: list[tuple[str, str]], **kwargs: Any
    ) -> None:
        super().__init__(*args, label_suffix="", **kwargs)
        self.fields["collections"].choices = collection_choices

    def chosen(self) -> list[str] | None:
        """None for all passports, else the chosen collection ids."""
        if self.cleaned_data["reach"] == "all":
            return None
        return list(self.cleaned_data["collections"])
