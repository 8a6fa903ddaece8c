"""Posting Django admin's change forms as a browser would, in tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workspaces.models import Membership


def form_data(response) -> dict:
    """What the admin's change form posts as rendered: the main form, every inline formset's
    management form and rows (so a test changes only what it means to)."""
    data: dict = {}

    def add(form) -> None:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            if value is True:
                value = "on"
            data[form.add_prefix(name)] = (
                [str(v) for v in value] if isinstance(value, list | tuple) else str(value)
            )

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        add(formset.management_form)
        for form in formset.forms:
            add(form)
    return data


def inline_row(data: dict, membership: Membership) -> str:
    """The inline prefix (`memberships-N`) of `membership`'s row in the posted form."""
    for key, value in data.items():
        if key.startswith("memberships-") and key.endswith("-id") and value == str(
            membership.pk
        ):
            return key.removesuffix("-id")
    raise AssertionError(f"no inline row for {membership}")
