"""Settings come from the environment and fail loudly, naming the variable."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from scorebridge import config

ROOT = Path(__file__).resolve().parents[2]


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


def test_typed_parsers() -> None:
    assert config.integer()("12") == 12
    assert config.comma_list("a, b,,c") == ["a", "b", "c"]
    assert config.parse_bool("Yes") is True and config.parse_bool("off") is False
    assert config.parse_bool("") is False
    assert config.days_or_forever("0") is None and config.days_or_forever("") is None
    assert config.proxy_header("X-Forwarded-Proto: https") == ("HTTP_X_FORWARDED_PROTO", "https")
    with pytest.raises(ValueError, match="at least 1"):
        config.integer(minimum=1)("0")


# --- issue 17, step 4: one settings registry -------------------------------------------------

# One malformed value for every type in the registry that a value can be malformed in.
_MALFORMED = {
    "bool": ("SCOREBRIDGE_METRICS_PUBLIC", "perhaps"),
    "int ≥ 0": ("SCORING_THREADS", "-1"),
    "int ≥ 1": ("SCORING_BATCH_SIZE", "many"),
    "int ≥ 5": ("SCOREBRIDGE_REQUEUE_AFTER_SECONDS", "3"),
    "int ≥ 30": ("SCOREBRIDGE_LTI_MAX_TOKEN_AGE_SECONDS", "10"),
    "int ≥ 60": ("CELERY_VISIBILITY_TIMEOUT", "1.5"),
    "int ≥ 300": ("SCOREBRIDGE_LTI_LAUNCH_TTL_SECONDS", "60"),
    "int ≥ 1024": ("SCOREBRIDGE_MAX_UPLOAD_BYTES", "1k"),
    "number ≥ 0": ("SCOREBRIDGE_REVIEW_THRESHOLD", "high"),
    "number ≥ 0.001": ("SCORING_BATCH_WAIT_SECONDS", "0"),
    "fraction 0..1": ("SCOREBRIDGE_TARGET_AGREEMENT", "1.5"),
    "number 0.01..0.99": ("SCOREBRIDGE_COLD_START_TARGET_QWK", "1"),
    "days": ("SCOREBRIDGE_RETAIN_LOGS_DAYS", "a week"),
    "one of `auto`, `torch`, `onnx`, `onnx-int8`": ("SCORING_BACKEND", "tensorflow"),
    "one of `auto`, `head`, `lora`, `full`": ("SCORING_TRAIN_KIND", "big"),
    "one of `auto`, `1`, `0`": ("SCOREBRIDGE_PRELOAD_ENGINE", "yes"),
    "broker URL": ("CELERY_BROKER_URL", "kafka://localhost"),
    "cache URL": ("SCOREBRIDGE_CACHE_URL", "memcached://localhost"),
    "database URL": ("DATABASE_URL", "nonsense://x"),
    "`Header: value`": ("SCOREBRIDGE_PROXY_SSL_HEADER", "X-Forwarded-Proto"),
}
# Types whose every value is valid (free text, comma-separated lists).
_ANY_VALUE = {"text", "list", "URL"}


def test_every_type_has_a_malformed_case() -> None:
    types = {setting.type for setting in config.REGISTRY} - _ANY_VALUE
    assert types == set(_MALFORMED)
    for kind, (name, _value) in _MALFORMED.items():
        assert config.BY_NAME[name].type == kind


@pytest.mark.parametrize(("variable", "value"), sorted(_MALFORMED.values()))
def test_malformed_value_of_each_type_names_the_variable(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ImproperlyConfigured, match=variable):
        config.read(variable)
    monkeypatch.delenv(variable)
    # unset, the registered default (DATABASE_URL's is computed by settings.py) is valid
    config.read(variable, *(["sqlite:///:memory:"] if variable == "DATABASE_URL" else []))


def test_unset_and_empty_values_keep_todays_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCOREBRIDGE_RETAIN_ANSWERS_DAYS", "")
    assert config.read("SCOREBRIDGE_RETAIN_ANSWERS_DAYS") is None  # empty = keep forever
    monkeypatch.delenv("SCOREBRIDGE_RETAIN_ANSWERS_DAYS")
    assert config.read("SCOREBRIDGE_RETAIN_ANSWERS_DAYS") == 730
    monkeypatch.setenv("CELERY_BROKER_URL", "")
    assert config.read("CELERY_BROKER_URL") == "filesystem://"
    assert config.read("SCOREBRIDGE_CACHE_URL")["BACKEND"].endswith("LocMemCache")
    assert config.read("SCOREBRIDGE_GAMING_MAX_CREDIT_RATE") is None
    assert config.read("SCOREBRIDGE_HSTS_SECONDS", 600) == 600
    with pytest.raises(KeyError):
        config.read("SCOREBRIDGE_NOT_REGISTERED")


def test_settings_read_every_registered_variable_and_nothing_else() -> None:
    code = (
        "import django; django.setup(); from scorebridge import config; "
        "print(' '.join(sorted(config.names_read())))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "scorebridge.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    wanted = {s.name for s in config.REGISTRY if s.read_by == "settings"}
    assert set(result.stdout.split()) == wanted


def test_readme_configuration_table_is_generated_from_the_registry() -> None:
    spec = importlib.util.spec_from_file_location(
        "settings_table", ROOT / "scripts/settings_table.py"
    )
    assert spec is not None and spec.loader is not None
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    readme = (ROOT / "README.md").read_text()
    assert table.render(readme) == readme, "run scripts/settings_table.py"
    for setting in config.REGISTRY:
        assert f"| `{setting.name}` |" in readme


# Reading the environment is the registry's job; these reads are not ours to register.
_FOREIGN_READS = {
    'os.environ.setdefault("DJANGO_SETTINGS_MODULE"',  # Django's own entry points
    'os.environ.get("REQUESTS_CA_BUNDLE")',  # the CA bundle requests itself honours
    'os.environ.get("SSL_CERT_FILE")',
}


def test_no_environment_variable_is_read_outside_the_registry() -> None:
    found = []
    for package in ("scorebridge", "scoring_plugin", "lti", "workers", "ml_core"):
        for path in (ROOT / package).rglob("*.py"):
            if path == ROOT / "scorebridge" / "config.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if re.search(r"os\.environ|getenv\(", line) and not any(
                    foreign in line for foreign in _FOREIGN_READS
                ):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []


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
