"""Settings come from the environment and fail loudly, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from scorebridge import env


def _start_django(**variables: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **variables}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SCOREBRIDGE_DEBUG", "perhaps"),
        ("SCOREBRIDGE_REQUEUE_AFTER_SECONDS", "soon"),
        ("SCORING_BACKEND", "tensorflow"),
        ("CELERY_BROKER_URL", "kafka://localhost"),
        ("SCOREBRIDGE_ARTIFACT_STORE", "/srv/artifacts"),
        ("SCOREBRIDGE_S3_ENDPOINT_URL", "seaweed:8333"),
    ],
)
def test_malformed_variable_stops_start_up_naming_it(variable: str, value: str) -> None:
    result = _start_django(DJANGO_SETTINGS_MODULE="scorebridge.settings", **{variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert variable in result.stderr


def test_defaults_need_no_configuration(tmp_path) -> None:  # type: ignore[no-untyped-def]
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    clean.update(SCOREBRIDGE_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="scorebridge.settings")
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, "
        "s.DATABASES['default']['OPTIONS']['init_command'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "sqlite3 filesystem:// PRAGMA journal_mode=WAL" in result.stdout
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_env_readers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_INT", "12")
    monkeypatch.setenv("X_LIST", "a, b,,c")
    monkeypatch.setenv("X_BOOL", "Yes")
    assert env.env_int("X_INT", 1) == 12
    assert env.env_int("X_MISSING", 7) == 7
    assert env.env_list("X_LIST", []) == ["a", "b", "c"]
    assert env.env_bool("X_BOOL", False) is True
    monkeypatch.setenv("X_INT", "0")
    with pytest.raises(ImproperlyConfigured, match="X_INT"):
        env.env_int("X_INT", 1, minimum=1)


# --- issue 12, finding 5: production profile, private files ---------------------------------

_SECRET_VARIABLES = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "SCOREBRIDGE_DEBUG",
    "SCOREBRIDGE_SECURE",
    "SCOREBRIDGE_CSP",
    "SCOREBRIDGE_PROXY_SSL_HEADER",
    "SCOREBRIDGE_HSTS_SECONDS",
)


def _manage(tmp_path, *args: str, **variables: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    environment = {k: v for k, v in os.environ.items() if k not in _SECRET_VARIABLES}
    environment.update(
        SCOREBRIDGE_VAR_DIR=str(tmp_path / "var"),
        DJANGO_SETTINGS_MODULE="scorebridge.settings",
        **variables,
    )
    command = " ".join([sys.executable, "manage.py", *args])
    return subprocess.run(
        ["sh", "-c", f"umask 022; exec {command}"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_production_profile_passes_the_deploy_checks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = _manage(
        tmp_path,
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        SCOREBRIDGE_SECURE="1",
        SCOREBRIDGE_ALLOWED_HOSTS="scoring.example.edu",
        SCOREBRIDGE_PROXY_SSL_HEADER="X-Forwarded-Proto: https",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
    # and without the profile the same checks do complain (the test checks something)
    plain = _manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING")
    assert plain.returncode != 0


def test_production_profile_settings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code = (
        "from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, "
        "s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, "
        "s.SECURE_PROXY_SSL_HEADER, bool(s.CONTENT_SECURITY_POLICY))"
    )
    result = _manage(
        tmp_path,
        "shell",
        "-v",
        "0",
        "-c",
        f'"{code}"',
        SCOREBRIDGE_SECURE="1",
        SCOREBRIDGE_HSTS_SECONDS="600",
        SCOREBRIDGE_PROXY_SSL_HEADER="X-Forwarded-Proto: https",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "True",
        "True",
        "True",
        "600",
        "('HTTP_X_FORWARDED_PROTO',",
        "'https')",
        "True",
    ]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SCOREBRIDGE_SECURE", "maybe"),
        ("SCOREBRIDGE_HSTS_SECONDS", "a year"),
        ("SCOREBRIDGE_SSL_REDIRECT", "sometimes"),
        ("SCOREBRIDGE_PROXY_SSL_HEADER", "X-Forwarded-Proto"),
    ],
)
def test_malformed_security_variable_stops_start_up(variable: str, value: str) -> None:
    result = _start_django(DJANGO_SETTINGS_MODULE="scorebridge.settings", **{variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert variable in result.stderr


@pytest.mark.django_db
def test_csp_header_keeps_lti_frame_ancestors(client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.CONTENT_SECURITY_POLICY = settings.DEFAULT_CSP
    home = client.get("/health/")["Content-Security-Policy"]
    assert "default-src 'self'" in home and "frame-ancestors 'self'" in home
    settings.LTI_EXTRA_FRAME_ANCESTORS = ["https://lms.example.edu"]
    framed = client.get("/lti/register/")["Content-Security-Policy"]
    assert "default-src 'self'" in framed
    assert "frame-ancestors 'self' https://lms.example.edu" in framed
    assert framed.count("frame-ancestors") == 1


def test_database_and_var_folder_are_private(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = _manage(tmp_path, "migrate", "--noinput", "-v", "0")
    assert result.returncode == 0, result.stderr
    var = tmp_path / "var"
    assert var.stat().st_mode & 0o777 == 0o700
    for path in [var / "scorebridge.sqlite3", var / "secret_key", *var.glob("*.sqlite3-*")]:
        assert path.stat().st_mode & 0o077 == 0, f"{path} is {oct(path.stat().st_mode)}"
    # a database left world-readable by an older version is tightened at the next start
    (var / "scorebridge.sqlite3").chmod(0o644)
    var.chmod(0o755)
    assert _manage(tmp_path, "check").returncode == 0
    assert (var / "scorebridge.sqlite3").stat().st_mode & 0o777 == 0o600
    assert var.stat().st_mode & 0o777 == 0o700
