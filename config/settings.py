"""Gatehouse settings: one module, driven by environment variables (see `.env.example`)."""

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# A statement running longer is cancelled (and the request answers 503), so a slow or locked
# database cannot hold workers: the API answers within ~2 s even then. Bulk commands (`migrate`
# on a large table, `prune`) can be given more with DB_STATEMENT_TIMEOUT_MS=0 (docs/deploy.md).
STATEMENT_TIMEOUT_MS = int(os.environ.get("DB_STATEMENT_TIMEOUT_MS", "1500"))
# The server enforces statement_timeout; a server that does not answer at all (frozen, partitioned)
# enforces nothing, so the client also bounds every wait for an answer (config/postgresql/base.py).
# Default: half a second past the statement timeout, off when the statement timeout is off.
DB_ANSWER_TIMEOUT_SECONDS = float(
    os.environ.get("DB_ANSWER_TIMEOUT_SECONDS")
    or (STATEMENT_TIMEOUT_MS / 1000 + 0.5 if STATEMENT_TIMEOUT_MS else 0)
)


def database_from_url(url: str) -> dict:
    """`postgres://user:pass@host:port/name?opt=v` or `sqlite:///path` → DATABASES['default']."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:////abs/path.db is absolute, sqlite:///rel.db relative to the working directory.
        name = unquote(parts.path)[1:] or ":memory:"
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": name}
    if parts.scheme in {"postgres", "postgresql", "pgsql"}:
        options = dict(parse_qsl(parts.query))
        return {
            "ENGINE": "config.postgresql",  # Django's, with a client-side bound on every wait
            "NAME": unquote(parts.path.lstrip("/")) or "postgres",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            # Connections are reused across requests: one connect per worker, not per request.
            "CONN_MAX_AGE": int(os.environ.get("DB_CONN_MAX_AGE", "60")),
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {
                # Fail fast when the database is unreachable or a statement hangs: the API answers
                # 503 within seconds instead of holding workers. 2 s is libpq's minimum; a stopped
                # server refuses at once.
                "connect_timeout": int(options.pop("connect_timeout", "2")),
                "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
                "answer_timeout": DB_ANSWER_TIMEOUT_SECONDS or None,
                **options,
            },
        }
    raise ImproperlyConfigured(f"DATABASE_URL scheme {parts.scheme!r} is not supported.")


GATEHOUSE_ENVIRONMENT = os.environ.get("GATEHOUSE_ENVIRONMENT", "development")
if GATEHOUSE_ENVIRONMENT not in {"production", "staging", "development"}:
    raise ImproperlyConfigured(
        "GATEHOUSE_ENVIRONMENT must be one of production, staging, development."
    )

DEBUG = env_bool("DEBUG", default=True)

_DEV_SECRET_KEY = "django-insecure-gatehouse-development-only-key-do-not-use-in-production"
SECRET_KEY = os.environ.get("SECRET_KEY") or _DEV_SECRET_KEY
if not DEBUG and SECRET_KEY == _DEV_SECRET_KEY:
    raise ImproperlyConfigured("Set SECRET_KEY when DEBUG=0.")

# The pepper keys the HMAC that stores API keys. Changing it invalidates every key, so production
# sets it explicitly; by default it is derived from SECRET_KEY (never equal to it).
GATEHOUSE_KEY_PEPPER = os.environ.get("GATEHOUSE_KEY_PEPPER") or hashlib.sha256(
    b"gatehouse-key-pepper:" + SECRET_KEY.encode()
).hexdigest()

# Seals the two-factor (TOTP) secrets at rest (audit.twofactor). Changing it disables every
# enrolled authenticator, so production sets it explicitly; by default derived from SECRET_KEY.
GATEHOUSE_OTP_KEY = os.environ.get("GATEHOUSE_OTP_KEY") or hashlib.sha256(
    b"gatehouse-otp-key:" + SECRET_KEY.encode()
).hexdigest()
# Sudo mode (SPEC §12): how long a sign-in counts as recent for sensitive actions.
GATEHOUSE_SUDO_SECONDS = int(os.environ.get("GATEHOUSE_SUDO_SECONDS", "600"))

# The audit log's HMAC key (docs/audit-log.md): outside the database, so a database writer cannot
# re-hash a rewritten log. Default: derived from SECRET_KEY (never equal to it). Old keys, comma-
# separated, keep verifying the events they signed after a rotation.
GATEHOUSE_AUDIT_KEY = os.environ.get("GATEHOUSE_AUDIT_KEY") or hashlib.sha256(
    b"gatehouse-audit-key:" + SECRET_KEY.encode()
).hexdigest()
GATEHOUSE_AUDIT_KEYS_OLD = env_list("GATEHOUSE_AUDIT_KEYS_OLD")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_ratelimit",
    "django_otp",
    "oauth2_provider",
    "django_tasks_db",
    # The project's apps, lowest layer first (SPEC §1; `lint-imports` holds the direction).
    "core",
    "audit",
    "workspaces",
    "passports",
    "apikeys",
    "oauth",
    "notifications",
    "gateway",
    "mcp_server",
]

MIDDLEWARE = [
    # First: credential-less CORS on the API, token and metadata endpoints only; answers
    # preflights before anything authenticates or meters them, and marks every response of
    # those paths, the 503s below included (config/cors.py). It touches no database.
    "config.cors.CorsMiddleware",
    # Then: a database or Redis outage anywhere below becomes a 503 (config/outages.py).
    "config.outages.ServiceUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # /api/v1/ only: token authentication, scopes, JSON errors (gateway/middleware.py).
    "gateway.middleware.ApiGatewayMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
                "workspaces.context_processors.workspaces",
            ],
        },
    },
]

DATABASES = {
    "default": database_from_url(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # WAL lets readers proceed while a writer commits; IMMEDIATE takes the write lock at BEGIN so
    # concurrent writers queue (busy timeout) instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # A file, not :memory:, for the test database: concurrency tests open real connections from
    # threads and server processes, and they must all see the same database.
    # One file per test run (by process id) so parallel runs on one checkout never share it.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("GATEHOUSE_TEST_DB")
        or str(BASE_DIR / ".test-dbs" / f"test-{os.getpid()}.sqlite3")
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
REDIS_TIMEOUT_SECONDS = float(os.environ.get("REDIS_TIMEOUT_SECONDS", "0.5"))
if REDIS_URL:
    CACHES = {
        "default": {
            # Django's RedisCache reusing its redis-py client (core/redis_cache.py).
            "BACKEND": "core.redis_cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "gatehouse",
            # Redis answers in well under a millisecond; a stopped or hung Redis must cost a
            # request at most this long per call (then 503, config/outages.py), never a retry.
            "OPTIONS": {
                "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
                "socket_timeout": REDIS_TIMEOUT_SECONDS,
                "retry_on_timeout": False,
            },
        }
    }
else:
    # The embedded default: a database-backed cache, shared by every process on the same database,
    # so failed-auth limits and revocation signals hold across workers without Redis.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "gatehouse_cache",
            "KEY_PREFIX": "gatehouse",
        }
    }
RATELIMIT_USE_CACHE = "default"
# django-ratelimit only recognises django-redis and memcached as atomic backends; Django's own
# RedisCache is atomic too (INCR), and the DatabaseCache default is the embedded fallback whose
# limits are documented as approximate in docs/operations.md.
SILENCED_SYSTEM_CHECKS = [
    "django_ratelimit.E003",
    "django_ratelimit.W001",
    # `http` redirect URIs stay allowed only for loopback hosts, which RFC 8252 §7.3 requires for
    # native apps and MCP clients; the oauth app's validator refuses http for any other host.
    "oauth2_provider.W008",
]

AUTH_USER_MODEL = "auth.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "workspaces:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Content Security Policy: everything from our own origin, no inline script, no framing.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "object-src": [CSP.NONE],
}

# OAuth 2.0 (SPEC §7): RFC 9700 posture — code flow with S256 PKCE only, hashed tokens, refresh
# rotation with reuse detection, `iss` in authorization responses. The oauth app extends this.
OAUTH2_PROVIDER = {
    "PKCE_REQUIRED": True,
    "ACCESS_TOKEN_EXPIRE_SECONDS": 15 * 60,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["http", "https"],
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
    # The oauth app's lock-down (docs/oauth.md): a server with only the authorization-code (S256)
    # and refresh-token grants, `gat_`/`grt_` tokens, the scope registry, open registration.
    "OAUTH2_SERVER_CLASS": "oauth.server.GatehouseServer",
    "OAUTH2_VALIDATOR_CLASS": "oauth.validators.GatehouseOAuth2Validator",
    "SCOPES_BACKEND_CLASS": "oauth.scopes.RegistryScopes",
    "ACCESS_TOKEN_GENERATOR": "oauth.tokens.generate_access_token",
    "CLIENT_SECRET_GENERATOR_CLASS": "oauth.tokens.ClientSecretGenerator",  # gcs_…
    "REFRESH_TOKEN_GENERATOR": "oauth.tokens.generate_refresh_token",
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
    "REFRESH_TOKEN_EXPIRE_SECONDS": 30 * 24 * 60 * 60,  # idle: 30 days after the last refresh
    "ALLOW_LOCALHOST_LOOPBACK": True,  # RFC 8252 §7.3/§8.3: native and MCP clients' callbacks
    "OAUTH2_RESPONSE_TYPES_SUPPORTED": ["code"],
    "OAUTH2_GRANT_TYPES_SUPPORTED": ["authorization_code", "refresh_token"],
    "OAUTH2_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED": [
        "none",
        "client_secret_basic",
        "client_secret_post",
    ],
    "DCR_ENABLED": True,
    "DCR_REGISTRATION_PERMISSION_CLASSES": ("oauth2_provider.dcr.AllowAllDCRPermission",),
    # Client ID Metadata Documents (oauth/cimd.py, docs/oauth.md): an https client_id is fetched
    # (5 s for the whole fetch, 8 KiB at most, public addresses only, no redirects) and cached
    # for its Cache-Control max-age, kept between 5 minutes and a day; a failure is not retried
    # for a minute. Dynamic registration stays on beside it.
    "CIMD_ENABLED": True,
    "CIMD_METADATA_FETCHER": "oauth.cimd.GatehouseMetadataFetcher",
    "CIMD_FETCH_TIMEOUT_SECONDS": 5,
    "CIMD_MAX_DOCUMENT_SIZE": 8 * 1024,
    "CIMD_METADATA_MIN_AGE_SECONDS": 300,
    "CIMD_METADATA_MAX_AGE_SECONDS": 86400,
    "CIMD_FAILURE_BACKOFF_SECONDS": 60,
    "CIMD_MAX_CONCURRENT_FETCHES": 10,
    "OAUTH2_PROTECTED_RESOURCE_NAME": "Gatehouse API",
    "APPLICATION_ADMIN_CLASS": "oauth.admin.ApplicationAdmin",
    "ACCESS_TOKEN_ADMIN_CLASS": "oauth.admin.AccessTokenAdmin",
    "REFRESH_TOKEN_ADMIN_CLASS": "oauth.admin.RefreshTokenAdmin",
    "GRANT_ADMIN_CLASS": "oauth.admin.GrantAdmin",
}

# For the test suite only (oauth/cimd.py), never from the environment: accept a metadata document
# served on a loopback address, and trust this CA file for its certificate.
GATEHOUSE_CIMD_ALLOW_LOOPBACK = False
GATEHOUSE_CIMD_CA_FILE = ""

# GitHub secret scanning (gateway/secret_scanning.py, docs/security.md): the public keys whose
# signatures make a leak report "verified", as a JSON object {key_identifier: PEM}. GitHub
# publishes them at https://api.github.com/meta/public_keys/secret_scanning. Empty: every report
# is handled as an anonymous one.
try:
    GATEHOUSE_GITHUB_SCANNING_KEYS = json.loads(
        os.environ.get("GATEHOUSE_GITHUB_SCANNING_KEYS") or "{}"
    )
except ValueError as exc:
    raise ImproperlyConfigured("GATEHOUSE_GITHUB_SCANNING_KEYS must be a JSON object.") from exc
if not isinstance(GATEHOUSE_GITHUB_SCANNING_KEYS, dict) or not all(
    isinstance(v, str) for v in GATEHOUSE_GITHUB_SCANNING_KEYS.values()
):
    raise ImproperlyConfigured(
        "GATEHOUSE_GITHUB_SCANNING_KEYS must map key identifiers to PEM strings."
    )

# Background work (SPEC §13): Django's tasks framework on the ORM backend, so a task is queued in
# the transaction of the change that causes it. `manage.py db_worker` runs the queue (make run
# starts one; docs/operations.md).
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

# Seals secrets the server must read back (webhook signing secrets; core/sealing.py). Changing it
# makes every webhook secret unreadable, so production sets it; by default derived from SECRET_KEY.
GATEHOUSE_SEALING_KEY = os.environ.get("GATEHOUSE_SEALING_KEY") or hashlib.sha256(
    b"gatehouse-sealing-key:" + SECRET_KEY.encode()
).hexdigest()

# Email (notifications, member invitations; docs/notifications.md), Django 6.1's MAILERS:
# EMAIL_BACKEND if set; otherwise SMTP when EMAIL_HOST is set or DEBUG=0 (Django's deploy check
# refuses the console backend there), configured by EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER,
# EMAIL_HOST_PASSWORD and EMAIL_USE_TLS; otherwise (development) printed to the console.
_EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND") or (
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG and not os.environ.get("EMAIL_HOST")
    else "django.core.mail.backends.smtp.EmailBackend"
)
MAILERS = {"default": {"BACKEND": _EMAIL_BACKEND}}
if _EMAIL_BACKEND.endswith("smtp.EmailBackend"):
    MAILERS["default"]["OPTIONS"] = {
        "host": os.environ.get("EMAIL_HOST", "localhost"),
        "port": int(os.environ.get("EMAIL_PORT", "25")),
        "username": os.environ.get("EMAIL_HOST_USER", ""),
        "password": os.environ.get("EMAIL_HOST_PASSWORD", ""),
        "use_tls": env_bool("EMAIL_USE_TLS", default=False),
        "timeout": 10,
    }
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Gatehouse <gatehouse@localhost>")
# Where links in emails point (the dashboard's public address).
GATEHOUSE_PUBLIC_URL = os.environ.get("GATEHOUSE_PUBLIC_URL", "http://127.0.0.1:8000")

# Webhooks (notifications/outbound.py, docs/webhooks.md). http:// to a loopback address is
# accepted in development only; never a private address.
GATEHOUSE_WEBHOOK_ALLOW_LOOPBACK = env_bool(
    "GATEHOUSE_WEBHOOK_ALLOW_LOOPBACK", default=GATEHOUSE_ENVIRONMENT == "development"
)
GATEHOUSE_WEBHOOK_TIMEOUT_SECONDS = float(os.environ.get("GATEHOUSE_WEBHOOK_TIMEOUT_SECONDS", "10"))
GATEHOUSE_WEBHOOK_RESPONSE_LIMIT = 64 * 1024  # bytes of a receiver's answer read, at most
GATEHOUSE_WEBHOOK_RETRY_BASE_SECONDS = float(
    os.environ.get("GATEHOUSE_WEBHOOK_RETRY_BASE_SECONDS", "60")
)
GATEHOUSE_WEBHOOK_RETRY_MAX_DELAY_SECONDS = float(
    os.environ.get("GATEHOUSE_WEBHOOK_RETRY_MAX_DELAY_SECONDS", str(10 * 3600))
)
GATEHOUSE_WEBHOOK_RETRY_WINDOW_SECONDS = float(
    os.environ.get("GATEHOUSE_WEBHOOK_RETRY_WINDOW_SECONDS", str(3 * 86400))
)
GATEHOUSE_WEBHOOK_SECRET_OVERLAP_SECONDS = int(
    os.environ.get("GATEHOUSE_WEBHOOK_SECRET_OVERLAP_SECONDS", str(24 * 3600))
)
# For the test suite only, never from the environment: trust this CA file for https receivers.
GATEHOUSE_WEBHOOK_CA_FILE = ""

# The API gateway routes each `/api/v1/` token to its verifier by prefix (apikit/principal.py).
GATEHOUSE_TOKEN_VERIFIERS = {
    "gk_": "apikeys.verifier.verify_api_key",
    "gat_": "oauth.verifier.verify_access_token",
}
# The hosted MCP server at /mcp and /mcp/readonly (SPEC §14, docs/mcp.md); off: every MCP path,
# its metadata document included, answers 404.
GATEHOUSE_MCP_ENABLED = env_bool("GATEHOUSE_MCP_ENABLED", default=True)
# Verified API keys are kept per process and confirmed on every request by the gateway's one
# Redis call (apikeys/keycache.py); only with REDIS_URL. 0 reads the key row on every request.
GATEHOUSE_KEY_CACHE = env_bool("GATEHOUSE_KEY_CACHE", default=True)
# Push invalidation with leases (core/leases.py): each process subscribes to the invalidation
# channel, and a cached credential under a fresh lease needs no Redis call when nothing is
# counted; changes wait for every worker's acknowledgement. Only with REDIS_URL.
GATEHOUSE_CACHE_PUSH = env_bool("GATEHOUSE_CACHE_PUSH", default=True)
# Tests only: while this file exists, every subscriber thread stops reading its subscription.
GATEHOUSE_CACHE_PUSH_PAUSE_FILE = os.environ.get("GATEHOUSE_CACHE_PUSH_PAUSE_FILE", "")
# How often each process rereads its whole filter of issued credentials (core/credfilter.py).
GATEHOUSE_CREDENTIAL_FILTER_REBUILD_SECONDS = float(
    os.environ.get("GATEHOUSE_CREDENTIAL_FILTER_REBUILD_SECONDS", "300")
)
# Per-address limits of the OAuth endpoints (oauth/endpoints.py), in django-ratelimit's "N/s|m|h|d":
# the token endpoint (shared with revocation and introspection, each counted on its own) and
# dynamic client registration.
GATEHOUSE_OAUTH_TOKEN_RATE = os.environ.get("GATEHOUSE_OAUTH_TOKEN_RATE", "60/m")
GATEHOUSE_OAUTH_REGISTER_RATE = os.environ.get("GATEHOUSE_OAUTH_REGISTER_RATE", "20/h")
# How often each process writes its buffered API usage to the database, seconds
# (gateway/usage.py): what a crashed worker can lose at most.
GATEHOUSE_USAGE_FLUSH_SECONDS = float(os.environ.get("GATEHOUSE_USAGE_FLUSH_SECONDS", "5"))

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", str(60 * 60 * 24 * 365)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # Behind a TLS-terminating proxy that sets X-Forwarded-Proto (docs/deploy.md).
    if env_bool("SECURE_PROXY_SSL_HEADER", default=True):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = env_bool("USE_X_FORWARDED_HOST", default=False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_secrets": {"()": "core.redaction.RedactSecretsFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["redact_secrets"]},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's own loggers propagate to root; request errors carry the request, whose
        # Authorization header the filter redacts from the formatted text.
        "django": {"handlers": [], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
        # The audit chain heads, one line per event: the anchors verify_audit_log --expect-head
        # checks against. Kept at INFO whatever LOG_LEVEL says; ship them off the machine.
        "gatehouse.audit.anchor": {"level": "INFO"},
    },
}
DEFAULT_EXCEPTION_REPORTER_FILTER = "core.redaction.SecretsExceptionReporterFilter"
