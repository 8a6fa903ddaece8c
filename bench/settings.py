"""Bench-only settings: the product's settings plus the DRF peer and the no-auth baseline URL.

Nothing here is reachable from the product's own URLs: `ROOT_URLCONF` points at `bench.urls`,
which adds `/bench/…` next to `config.urls`. Everything on the product's request path (middleware,
database options, `CONN_MAX_AGE`, caches, hashing) is `config.settings` unchanged.
"""

import os

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS, MIDDLEWARE, OAUTH2_PROVIDER, STATIC_ROOT

INSTALLED_APPS = [*INSTALLED_APPS, "rest_framework", "rest_framework_api_key"]
ROOT_URLCONF = "bench.urls"
# The peer as drf-api-key's docs set it up, minus DRF's session and basic authentication (which
# would only add work to the peer's requests): HasAPIKey is the whole door.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}

# `collectstatic` output for this run (the harness points it at a temporary folder): with
# DEBUG=0 the dashboard's pages need the manifest, as in production.
STATIC_ROOT = os.environ.get("BENCH_STATIC_ROOT") or STATIC_ROOT

# The seeded OAuth access token must outlive a long run (`--rounds 20`); verification does the
# same work whatever the lifetime (`AccessToken.is_expired()` compares one timestamp).
OAUTH2_PROVIDER = {**OAUTH2_PROVIDER, "ACCESS_TOKEN_EXPIRE_SECONDS": 6 * 60 * 60}

# The `apikey_unmetered` scenario (`BENCH_UNMETERED=1`) serves the same app with budgets, rate
# limits and usage metering off, to measure what metering costs (target: under 10%): the gateway
# middleware is swapped for its bench-only subclass without the metering steps. The key cache
# goes too, since metering's Redis call is what confirms a cached key (apikeys/keycache.py).
if os.environ.get("BENCH_UNMETERED") == "1":
    MIDDLEWARE = [
        "bench.middleware.UnmeteredGatewayMiddleware"
        if path == "gateway.middleware.ApiGatewayMiddleware"
        else path
        for path in MIDDLEWARE
    ]
    GATEHOUSE_KEY_CACHE = False
