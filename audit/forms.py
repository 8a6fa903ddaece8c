from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django import forms

from .actions import WORKSPACE_ACTIONS

FILTER_FIELDS = ("action", "actor", "since", "until")


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


class AuditFilterForm(forms.Form):
    """The audit log's filters, from the query string (GET), shared by the list and the export.

    Dates are whole UTC days, both inclusive: `until=2025-03-31` includes the whole of that day.
    """

    action = forms.ChoiceField(
        required=False, choices=[("", "All actions"), *WORKSPACE_ACTIONS.items()]
    )
    actor = forms.CharField(
        required=False,
        max_length=255,
        help_text="A user's email, a key's name or id.",
    )
    since = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )
    cursor = forms.CharField(required=False, max_length=512, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date must be on or after the start date.")
        return cleaned

    def filters(self) -> dict[str, Any]:
        """Keyword arguments for `audit_event_page` / `audit_event_queryset` (valid form only)."""
        data = self.cleaned_data
        until = None
        if data["until"] is not None and data["until"] < date.max:
            until = _start_of(data["until"] + timedelta(days=1))
        return {
            "action": data["action"] or None,
            "actor": data["actor"] or None,
            "since": _start_of(data["since"]) if data["since"] else None,
            "until": until,
        }

    def query(self) -> dict[str, str]:
        """The filter as typed (no cursor), for links that keep it: export, paging."""
        return {
            name: self.data[name].strip()
            for name in FILTER_FIELDS
            if isinstance(self.data.get(name), str) and self.data[name].strip()
        }


class SecondFactorForm(forms.Form):
    """A code from the authenticator app, or a recovery code (spaces and dashes are ignored)."""

    code = forms.CharField(
        max_length=64, label="Code",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "text",
                                      "autofocus": True}),
    )
