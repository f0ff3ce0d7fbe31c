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


_LOG_ONE_LINE = (
    "import django, logging; django.setup(); "
    "logging.getLogger('lti.views').info('LTI launch refused: bad_state')"
)


def _log_one_line(**variables: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "SCOREBRIDGE_LOG_DIR"}
    environment.update(DJANGO_SETTINGS_MODULE="scorebridge.settings", **variables)
    return subprocess.run(
        [sys.executable, "-c", _LOG_ONE_LINE],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_application_logs_go_to_stdout_by_default() -> None:
    result = _log_one_line()
    assert result.returncode == 0, result.stderr
    assert "INFO lti.views LTI launch refused: bad_state" in result.stdout


def test_application_logs_go_to_a_file_under_scorebridge_log_dir(tmp_path) -> None:
    folder = tmp_path / "log"
    result = _log_one_line(SCOREBRIDGE_LOG_DIR=str(folder))
    assert result.returncode == 0, result.stderr
    assert "LTI launch refused" not in result.stdout + result.stderr
    assert (
        "INFO lti.views LTI launch refused: bad_state" in (folder / "scorebridge.log").read_text()
    )
