"""Dashboard forms for API keys. They only parse input into typed values; what is allowed (scopes,
expiry in the future, CIDRs, plan limits) is decided by the services, whose field errors the views
attach back to these forms under the same names."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from workspaces.scopes import api_key_scopes, default_key_scope_names

from .models import ApiKey, Environment
from .services import normalize_allowed_ips, rate_limit_error

OVERLAP_CHOICES = [
    ("now", "Immediately — the old key stops now"),
    ("1h", "1 hour"),
    ("24h", "24 hours"),
    ("7d", "7 days"),
]


REACH_CHOICES = [("all", "All passports"), ("selected", "Only selected collections")]


class ApiKeySettingsForm(forms.Form):
    """The settings a key is created with and later edited (SPEC §3): the create dialog and the
    key's Edit form. Collections (SPEC §11): "All passports" or "Only selected collections"."""

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
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Optional. After this moment the key is refused with key_expired.",
    )
    rate_limit_per_minute = forms.IntegerField(
        required=False, label="Rate limit (requests per minute)",
        help_text="Optional. Empty means the plan's limits only.",
        error_messages={
            "invalid": "Enter a whole number of requests per minute, or leave it empty."
        },
    )
    allowed_ips = forms.CharField(
        required=False, label="Allowed IPs", widget=forms.Textarea(attrs={"rows": 2}),
        max_length=5000,
        help_text="Optional. Addresses or CIDR ranges, one per line or comma-separated; "
        "requests from anywhere else are refused.",
    )
    reach = forms.ChoiceField(  # not sent (a script, an old form): all passports
        choices=REACH_CHOICES, initial="all", widget=forms.RadioSelect, required=False,
        label="Passports this key reaches",
    )
    collections = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label="Collections",
        help_text="With “Only selected collections” and none chosen, the key reaches no passport.",
    )

    def __init__(
        self, *args: Any, collection_choices: list[tuple[str, str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, label_suffix="", **kwargs)
        if self.is_bound:
            # Re-rendered with errors: focus goes to the first field in error (see
            # autofocus_first_error), never back to the name while the user types elsewhere.
            self.fields["name"].widget.attrs.pop("autofocus", None)
        self.scope_registry = api_key_scopes()
        self.fields["scopes"].choices = [(s.name, s.name) for s in self.scope_registry]
        self.fields["scopes"].initial = default_key_scope_names()
        self.fields["collections"].choices = collection_choices or []

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

    def chosen_collections(self) -> list[str] | None:
        """None for all passports, else the chosen collection ids."""
        if self.cleaned_data.get("reach") != "selected":
            return None
        return list(self.cleaned_data.get("collections") or [])

    def service_arguments(self) -> dict[str, Any]:
        """The cleaned values under the services' argument names."""
        data = {
            name: self.cleaned_data[name]
            for name in ("name", "note", "scopes", "expires_at", "rate_limit_per_minute",
                         "allowed_ips")
        }
        data["collections"] = self.chosen_collections()
        return data


def environment_choices() -> list[tuple[str, str]]:
    """Each environment with the deployments its keys work against: a key works only on a
    deployment whose GATEHOUSE_ENVIRONMENT is its own (SPEC §3: `environment_mismatch`)."""
    here = settings.GATEHOUSE_ENVIRONMENT
    return [
        (value, f"{label} — works against this deployment" if value == here
         else f"{label} — works only against a {value} deployment, not this one ({here})")
        for value, label in Environment.choices
    ]


class ApiKeyCreateForm(ApiKeySettingsForm):
    environment = forms.ChoiceField(choices=Environment.choices)
    field_order = ["name", "note", "scopes", "environment"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["environment"].choices = environment_choices()
        self.fields["environment"].initial = settings.GATEHOUSE_ENVIRONMENT
        self.fields["environment"].help_text = (
            f"This deployment is {settings.GATEHOUSE_ENVIRONMENT}: it accepts "
            f"{settings.GATEHOUSE_ENVIRONMENT} keys only. A key of another environment is for "
            "the deployment of that environment."
        )

    def clean_allowed_ips(self) -> list[str]:
        """Checked here as well as by the service, so that a bad range is reported with every
        other error of the form at once (the Edit form gets them all from `apikey_update`)."""
        values = super().clean_allowed_ips()
        try:
            normalize_allowed_ips(values)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["allowed_ips"]) from None
        return values

    def clean_rate_limit_per_minute(self) -> int | None:
        value = self.cleaned_data["rate_limit_per_minute"]
        if error := rate_limit_error(value):
            raise ValidationError(error)
        return value

    def clean_expires_at(self) -> Any:
        value = self.cleaned_data["expires_at"]
        if value is not None and value <= timezone.now():
            raise ValidationError("The expiry must be in the future.")
        return value

    def service_arguments(self) -> dict[str, Any]:
        return {**super().service_arguments(), "environment": self.cleaned_data["environment"]}


def edit_initial(key: ApiKey, collection_ids: list[str] | None) -> dict[str, Any]:
    """The Edit form's initial values: the key as it is (`collection_ids`: its collections'
    public ids, None for all passports)."""
    return {
        "name": key.name, "note": key.note, "scopes": list(key.scopes),
        "expires_at": key.expires_at, "rate_limit_per_minute": key.rate_limit_per_minute,
        "allowed_ips": "\n".join(key.allowed_ips),
        "reach": "all" if collection_ids is None else "selected",
        "collections": collection_ids or [],
    }


class ApiKeyEditForm(ApiKeySettingsForm):
    """The key's Edit form: the same fields as creation, without the environment (it is part of
    the token). An empty expiry means the key never expires."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].widget.attrs.pop("autofocus", None)
        self.fields["expires_at"].help_text = (
            "Empty means the key never expires. After this moment it is refused with key_expired."
        )

    def changes_for(self, key: ApiKey) -> dict[str, Any]:
        """What `apikey_update` gets. The expiry field holds whole minutes: a value equal to the
        key's expiry to the minute is the key's own (unchanged), not a new one seconds earlier."""
        changes = self.service_arguments()
        posted, current = changes["expires_at"], key.expires_at
        if posted is not None and current is not None and (
            posted == current.replace(second=0, microsecond=0)
        ):
            changes["expires_at"] = current
        return changes

    def add_service_errors(self, exc: ValidationError) -> None:
        """Attach the service's errors to the fields they name (the rest above the form)."""
        if hasattr(exc, "error_dict"):
            for field, errors in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, errors)
        else:
            self.add_error(None, exc.messages)


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


def _no_lone_surrogates(value: str) -> None:
    if any("\ud800" <= char <= "\udfff" for char in value):
        raise ValidationError("The search contains characters no name or note has.")


STATUS_FILTER_CHOICES = [
    ("", "Any status"), ("active", "Active"), ("paused", "Paused"), ("expired", "Expired"),
    ("revoked", "Revoked"),
]


class KeyFilterForm(forms.Form):
    """The key list's search and filters (GET): each one narrows both sections."""

    q = forms.CharField(
        required=False, max_length=100, label="Search",
        validators=[_no_lone_surrogates],
        widget=forms.TextInput(attrs={
            "type": "search", "placeholder": "Name, note or hint (…abcd)", "autocomplete": "off",
        }),
        error_messages={"max_length": "Search with at most 100 characters."},
    )
    status = forms.ChoiceField(required=False, choices=STATUS_FILTER_CHOICES, label="Status")
    environment = forms.ChoiceField(required=False, label="Environment")
    scope = forms.ChoiceField(required=False, label="Scope")
    cursor = forms.CharField(required=False, max_length=600, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, label_suffix="", **kwargs)
        self.fields["environment"].choices = [("", "Any environment"), *Environment.choices]
        self.fields["scope"].choices = [("", "Any scope")] + [
            (s.name, s.name) for s in api_key_scopes()
        ]
