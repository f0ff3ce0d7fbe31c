"""Rate limits are counted in the shared cache (issue 12, finding 5): two web processes against
one Redis let through as many requests as the limit, not the limit per process."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.scoring.realworker import PrivateRedis

# One web process: it sends REQUESTS batch requests as one API user (no database needed: an
# empty batch is refused with 400 after the throttles ran) and prints how many got 429.
_CLIENT = """
import sys
import django
django.setup()
from django.contrib.auth.models import User
from rest_framework.test import APIRequestFactory, force_authenticate
from scoring_plugin.api_batch import BatchSubmit

user_pk, requests = int(sys.argv[1]), int(sys.argv[2])
user = User(pk=user_pk, username="client")
view = BatchSubmit.as_view()
codes = []
for _ in range(requests):
    request = APIRequestFactory().post("/api/v1/submissions/batch/", {"answers": []}, format="json")
    force_authenticate(request, user=user)
    codes.append(view(request).status_code)
print(codes.count(429), codes.count(400))
"""


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """REDIS_URL when the suite has one (CI; db 11 on a shared server), else a private
    redis-server of this test."""
    url = os.environ.get("SCOREBRIDGE_TEST_CACHE_REDIS_URL") or os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no REDIS_URL and redis-server is not installed")
    server = PrivateRedis(binary, tmp_path, tmp_path / "redis.log")
    server.start()
    try:
        yield server.url
    finally:
        server.kill()


def _start_client(redis: str, user_pk: int, requests: int) -> subprocess.Popen[str]:
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "scorebridge.settings",
        "SCOREBRIDGE_CACHE_URL": redis,
        "SCOREBRIDGE_API_BATCH_RATE": "10/minute",
    }
    return subprocess.Popen(
        [sys.executable, "-c", _CLIENT, str(user_pk), str(requests)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_web_processes_share_one_rate_limit(redis_url: str) -> None:
    user_pk = 10_000_000 + secrets.randbelow(10_000_000)  # fresh counters on a shared Redis
    clients = [_start_client(redis_url, user_pk, 8) for _ in range(2)]
    outcomes = []
    for client in clients:
        stdout, stderr = client.communicate(timeout=120)
        assert client.returncode == 0, stderr
        throttled, passed = map(int, stdout.split())
        outcomes.append((throttled, passed))
    # 16 requests, 10 allowed per minute for this user across both processes
    assert sum(passed for _, passed in outcomes) == 10, outcomes
    assert sum(throttled for throttled, _ in outcomes) == 6, outcomes


def test_malformed_cache_url_stops_start_up() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "scorebridge.settings",
            "SCOREBRIDGE_CACHE_URL": "memcached://x",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert ImproperlyConfigured.__name__ in result.stderr
    assert "SCOREBRIDGE_CACHE_URL" in result.stderr
