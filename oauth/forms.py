from __future__ import annotations

from django import forms

from .redirects import MAX_REDIRECT_URIS, validate_redirect_uris
from .services import MAX_APP_NAME_LENGTH


class OAuthAppForm(forms.Form):
    name = forms.CharField(
        max_length=MAX_APP_NAME_LENGTH,
        help_text="Shown to users on the consent screen.",
    )
    redirect_uris = forms.CharField(
        label="Redirect URIs",
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text=(
            f"One per line, at most {MAX_REDIRECT_URIS}, matched exactly. https, or http on "
            "127.0.0.1, [::1] or localhost (any port) for native and command-line apps."
        ),
    )
    client_type = forms.ChoiceField(
        label="Client type",
        choices=[
            ("confidential", "Confidential — a server that can keep a client secret"),
            ("public", "Public — a native, mobile or single-page app (PKCE, no secret)"),
        ],
        initial="confidential",
        widget=forms.RadioSelect,
    )

    def clean_redirect_uris(self) -> list[str]:
        return validate_redirect_uris(self.cleaned_data["redirect_uris"].split())


class OAuthAppEditForm(forms.Form):
    """An app's name and redirect URIs, edited after registration (`oauth_app_update`); its
    grants and tokens stay. The client type and id cannot change."""

    name = OAuthAppForm.base_fields["name"]
    redirect_uris = OAuthAppForm.base_fields["redirect_uris"]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, label_suffix="", **kwargs)

    def clean_redirect_uris(self) -> str:
        return " ".join(validate_redirect_uris(self.cleaned_data["redirect_uris"].split()))
