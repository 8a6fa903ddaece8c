"""Filters every dashboard page may use (`{% load dashboard %}`)."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def ago(moment: datetime | None) -> str:
    """`just now` under a minute, else `5 minutes ago` (Django's timesince, its largest two
    units): never `0 minutes ago`."""
    if moment is None:
        return ""
    if (timezone.now() - moment).total_seconds() < 60:
        return "just now"
    return f"{timesince(moment)} ago"
