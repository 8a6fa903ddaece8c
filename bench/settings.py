"""Bench-only settings: the product's settings plus the DRF peer and the no-auth baseline URL.

Nothing here is reachable from the product's own URLs: `ROOT_URLCONF` points at `bench.urls`,
which adds `/bench/…` next to `config.urls`.
"""

import os

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "rest_framework", "rest_framework_api_key"]
ROOT_URLCONF = "bench.urls"
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}

# The `apikey_unmetered` scenario serves the same app with budgets, rate limits and usage
# metering off, to measure what metering costs (issue: under 10%). Only this module reads it.
GATEHOUSE_METERING = os.environ.get("GATEHOUSE_METERING", "1") != "0"
