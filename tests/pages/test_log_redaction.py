"""Secrets never reach the logs (issue 12, finding 5): launch page tokens (valid for hours,
an instructor's allows overrides), registration links and ``registration_token``."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from scorebridge.logredact import RedactFilter, redact
from tests.scoring.realworker import free_port

ROOT = Path(__file__).resolve().parents[2]


def _get(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_gunicorn_access_log_and_web_log_hold_no_tokens(tmp_path: Path) -> None:
    environment = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")
    }
    environment.update(
        SCOREBRIDGE_VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="scorebridge.settings"
    )
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stderr
    page_token = "page" + secrets.token_urlsafe(24)
    invite_token = "invite" + secrets.token_urlsafe(24)
    registration_token = "regtoken" + secrets.token_urlsafe(24)
    port = free_port()
    access_log = tmp_path / "access.log"
    web_log = tmp_path / "web.log"
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    # Started the way scripts/demo.sh and the Docker image start it, in the repository root
    # (gunicorn reads gunicorn.conf.py from there).
    with web_log.open("w") as output:
        server = subprocess.Popen(
            [
                gunicorn,
                "scorebridge.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--access-logfile",
                str(access_log),
            ],  # fmt: skip
            cwd=ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(f"{base}/health/") == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, web_log.read_text()
            time.sleep(0.2)
        page = f"{base}/lti/s/{page_token}/"
        assert _get(f"{page}status/", {"Referer": page}) == 404
        assert _get(f"{page}review/?student=x&token={page_token}") == 404
        register = (
            f"{base}/lti/register/{invite_token}/?openid_configuration="
            f"https%3A%2F%2Flms.example.edu%2Fopenid&registration_token={registration_token}"
        )
        assert _get(register) == 404
        time.sleep(0.5)  # the access log is written after the response
    finally:
        server.terminate()
        server.wait(timeout=30)
    logged = access_log.read_text() + web_log.read_text()
    assert "/lti/s/[redacted]/status/" in access_log.read_text()  # the requests were logged
    assert "/lti/register/[redacted]/" in access_log.read_text()
    for secret in (page_token, invite_token, registration_token):
        assert secret not in logged, logged


def test_django_request_warnings_are_redacted(client, caplog, db) -> None:  # type: ignore[no-untyped-def]
    token = "page" + secrets.token_urlsafe(24)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert client.get(f"/lti/s/{token}/status/").status_code == 404
    assert caplog.records
    for record in caplog.records:
        assert token not in record.getMessage()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET /lti/s/abc123/review/ HTTP/1.1", "GET /lti/s/[redacted]/review/ HTTP/1.1"),
        (
            "/lti/register/xyz/?registration_token=t0k&a=1",
            "/lti/register/[redacted]/?registration_token=[redacted]&a=1",
        ),
        ("/api/v1/items/?page=2", "/api/v1/items/?page=2"),
        ("id_token=eyJ.x.y&state=s1", "id_token=[redacted]&state=[redacted]"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_filter_rewrites_records() -> None:
    record = logging.LogRecord(
        "django.request", logging.WARNING, "", 0, "Not Found: %s", ("/lti/s/abc/",), None
    )
    assert RedactFilter().filter(record)
    assert record.getMessage() == "Not Found: /lti/s/[redacted]/"
