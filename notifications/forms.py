from __future__ import annotations

from django import forms

from .kinds import EMAIL_TYPES, WEBHOOK_TYPES
from .outbound import MAX_URL_LENGTH


class EmailPreferencesForm(forms.Form):
    email = forms.MultipleChoiceField(
        choices=[(t.name, t.label) for t in EMAIL_TYPES], required=False,
        widget=forms.CheckboxSelectMultiple, label="Email me about",
    )


class WebhookEndpointForm(forms.Form):
    url = forms.CharField(label="Endpoint URL", max_length=MAX_URL_LENGTH, strip=True,
                          help_text="https:// (http:// only to a loopback address in development)")
    description = forms.CharField(max_length=200, required=False)
    event_types = forms.MultipleChoiceField(
        choices=[(t.name, f"{t.name} — {t.label}") for t in WEBHOOK_TYPES],
        widget=forms.CheckboxSelectMultiple, label="Events to send",
    )


class WebhookEndpointEditForm(WebhookEndpointForm):
    enabled = forms.BooleanField(required=False, label="Enabled")
