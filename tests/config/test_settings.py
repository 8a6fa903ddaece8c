import json
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def test_argon2_is_the_password_hasher() -> None:
    from config import settings as product_settings

    assert product_settings.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher")


def test_production_settings_pass_check_deploy() -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "DJANGO_SETTINGS_MODULE",
            "DEBUG",
            "SECRET_KEY",
            "ALLOWED_HOSTS",
            "DJANGO_ALLOW_ASYNC_UNSAFE",
        }
    }
    env.update(
        DEBUG="0",
        SECRET_KEY="x7!Qm2#vR9$kL4@pZ8&nW3*tY6^bH1%cJ5(dF0)gS2_eA7+uI9=oP4-rT8~wE3",
        ALLOWED_HOSTS="gatehouse.example.com",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_debug_off_without_secret_key_refuses_to_start() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DJANGO_SETTINGS_MODULE"}}
    env["DEBUG"] = "0"
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Set SECRET_KEY" in result.stderr


def test_content_security_policy_header_is_sent(client) -> None:
    response = client.get("/accounts/login/")
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp


def test_key_pepper_differs_from_secret_key() -> None:
    assert settings.GATEHOUSE_KEY_PEPPER
    assert settings.GATEHOUSE_KEY_PEPPER != settings.SECRET_KEY


def test_rates_and_flush_interval_come_from_the_environment() -> None:
    names = ("GATEHOUSE_OAUTH_TOKEN_RATE", "GATEHOUSE_OAUTH_REGISTER_RATE",
             "GATEHOUSE_USAGE_FLUSH_SECONDS")
    code = "import json, config.settings as s; print(json.dumps([getattr(s, n) for n in %r]))"

    def read(**env: str) -> list:
        environ = {k: v for k, v in os.environ.items() if k not in names}
        result = subprocess.run(
            [sys.executable, "-c", code % (names,)], cwd=ROOT, env={**environ, **env},
            capture_output=True, text=True, timeout=60, check=True,
        )
        return json.loads(result.stdout)

    assert read() == ["60/m", "20/h", 5.0]
    assert read(**dict(zip(names, ("7/s", "3/d", "0.5"), strict=True))) == ["7/s", "3/d", 0.5]
