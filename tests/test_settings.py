"""Production mode refuses insecure configuration; `check --deploy` is clean."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from connections.crypto import DEVELOPMENT_KEY, generate_key_entry

REPO = Path(__file__).resolve().parent.parent

PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "q8w9e7r6t5y4u3i2o1p0-asdfghjklzxcvbnm-QWERTYUIOPASDFGH",
    "ALLOWED_HOSTS": "portal.example.com",
    "PORTAL_BASE_URL": "https://portal.example.com",
    "FIELD_ENCRYPTION_KEYS": generate_key_entry("k1"),
    "API_KEY_HMAC_SECRET": "x" * 16 + "y" * 16 + "z" * 8,
    "DATABASE_URL": "sqlite:////tmp/attio-portal-settings-test.sqlite3",
}


def run_django(args: list[str], env_overrides: dict[str, str | None]):
    env = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV}
    env.update(PRODUCTION_ENV)
    for key, value in env_overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    env["DJANGO_SETTINGS_MODULE"] = "attio_portal.settings"
    # Run outside the repo's .env so only this environment counts.
    return subprocess.run(
        [sys.executable, str(REPO / "manage.py"), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SECRET_KEY", None, "SECRET_KEY is not set"),
        ("SECRET_KEY", "", "SECRET_KEY is not set"),
        (
            "SECRET_KEY",
            "django-insecure-development-only-never-use-this-key-in-production",
            "SECRET_KEY is the insecure development default",
        ),
        ("SECRET_KEY", "short-key", "SECRET_KEY is too short"),
        ("ALLOWED_HOSTS", None, "ALLOWED_HOSTS is empty"),
        ("ALLOWED_HOSTS", "*", "ALLOWED_HOSTS contains '*'"),
        ("FIELD_ENCRYPTION_KEYS", None, "FIELD_ENCRYPTION_KEYS is not set"),
        (
            "FIELD_ENCRYPTION_KEYS",
            DEVELOPMENT_KEY,
            "FIELD_ENCRYPTION_KEYS contains the development key",
        ),
        ("FIELD_ENCRYPTION_KEYS", "k1:tooshort", "FIELD_ENCRYPTION_KEYS is invalid"),
        ("FIELD_ENCRYPTION_KEYS", "no-colon-here", "FIELD_ENCRYPTION_KEYS is invalid"),
        ("API_KEY_HMAC_SECRET", None, "API_KEY_HMAC_SECRET is not set"),
    ],
)
def test_production_refuses_insecure_setting(variable, value, expected):
    result = run_django(["check"], {variable: value})
    assert result.returncode != 0
    assert expected in result.stderr
    assert "refuses to start" in result.stderr or "invalid" in result.stderr


def test_production_settings_start():
    result = run_django(["check"], {})
    assert result.returncode == 0, result.stderr


def test_check_deploy_passes_with_no_warnings_under_production_env():
    result = run_django(["check", "--deploy", "--fail-level", "WARNING"], {})
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_development_needs_no_configuration():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEBUG", "SECRET"))}
    for key in PRODUCTION_ENV:
        env.pop(key, None)
    result = subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "check"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


LOOPBACK_ENV = {
    "DEBUG": None,
    "SECRET_KEY": None,
    "FIELD_ENCRYPTION_KEYS": None,
    "API_KEY_HMAC_SECRET": None,
    "ALLOWED_HOSTS": "127.0.0.1,localhost,[::1]",
    "PORTAL_BASE_URL": "http://127.0.0.1:8000",
}


@pytest.mark.parametrize(
    "overrides",
    [
        {"PORTAL_BASE_URL": "https://portal.example.com"},
        {"ALLOWED_HOSTS": "127.0.0.1,portal.example.com"},
        {"ALLOWED_HOSTS": "*"},
        {"PORTAL_BASE_URL": "http://192.168.1.20:8000", "ALLOWED_HOSTS": "192.168.1.20"},
    ],
)
def test_debug_left_unset_refuses_a_host_other_than_loopback(overrides):
    result = run_django(["check"], {**LOOPBACK_ENV, **overrides})
    assert result.returncode != 0
    assert "DEBUG is not set" in result.stderr
    assert "Set DEBUG=false" in result.stderr


def test_debug_set_explicitly_may_serve_a_network():
    """Development on a LAN: whoever wants DEBUG there says so."""
    overrides = {"PORTAL_BASE_URL": "http://192.168.1.20:8000", "ALLOWED_HOSTS": "192.168.1.20"}
    result = run_django(["check"], {**LOOPBACK_ENV, **overrides, "DEBUG": "true"})
    assert result.returncode == 0, result.stderr


def test_debug_left_unset_on_loopback_starts():
    result = run_django(
        ["check"], {**LOOPBACK_ENV, "ALLOWED_HOSTS": "localhost,.localhost,127.0.0.2"}
    )
    assert result.returncode == 0, result.stderr
