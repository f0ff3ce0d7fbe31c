"""Helpers for tests that start real Celery worker processes on a real broker.

The worker is a separate process (its own session, so a test can SIGKILL it with its pool
processes); it opens the test database and the broker this test process points at.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.request import urlopen

import pytest
from django.conf import settings
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from queueing import dispatch
from queueing.app import app, broker_transport, broker_transport_options
from scoring_plugin.models import Submission


def database_url(host: str | None = None, port: int | None = None) -> str:
    """The test database, as the worker process must open it (optionally at another address)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    host = host or db["HOST"] or "127.0.0.1"
    port = port or int(db["PORT"] or 5432)
    return f"postgres://{auth}@{host}:{port}/{db['NAME']}"


def _drop_connections() -> None:
    app.close()
    # Celery caches its producer pool apart from the connection pool; drop it too, or messages
    # keep going to the broker of the previous test.
    app.amqp._producer_pool = None
    dispatch.forget_broker_failures()


@contextmanager
def broker(url: str) -> Iterator[None]:
    """Point this process's Celery app at ``url`` and empty its queues."""
    previous = (
        app.conf.broker_url,
        app.conf.broker_transport_options,
        app.conf.broker_transport,
    )
    app.conf.broker_url = url
    app.conf.broker_transport_options = broker_transport_options(url)
    app.conf.broker_transport = broker_transport(url)
    _drop_connections()
    try:
        app.control.purge()
        yield
    finally:
        (
            app.conf.broker_url,
            app.conf.broker_transport_options,
            app.conf.broker_transport,
        ) = previous
        _drop_connections()


@contextmanager
def worker_process(
    url: str,
    backbone: Path,
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    database: str | None = None,
    queues: str = "scoring,training,lms",
) -> Iterator[subprocess.Popen[bytes]]:
    """A ``celery worker`` on ``queues`` (all three by default); ``env`` adds or overrides its
    variables."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "scorebridge.settings",
        "SCOREBRIDGE_VAR_DIR": str(settings.VAR_DIR),
        "DATABASE_URL": database or database_url(),
        "CELERY_BROKER_URL": url,
        "SCORING_BACKBONE": str(backbone),
        "HF_HUB_OFFLINE": "1",
        # the artifact store of this test process (versions name artifacts by key, not path)
        "SCOREBRIDGE_ARTIFACTS_DIR": str(settings.ARTIFACTS_DIR),
        "SCOREBRIDGE_ARTIFACT_STORE": settings.ARTIFACT_STORE,
        "SCOREBRIDGE_S3_ENDPOINT_URL": settings.S3_ENDPOINT_URL,
        "SCOREBRIDGE_S3_ACCESS_KEY_ID": settings.S3_ACCESS_KEY_ID,
        "SCOREBRIDGE_S3_SECRET_ACCESS_KEY": settings.S3_SECRET_ACCESS_KEY,
        **(env or {}),
    }
    command = [
        sys.executable, "-m", "celery", "-A", "workers", "worker",
        "-Q", queues, "--concurrency", "1", "--pool", "prefork",
        "--prefetch-multiplier", "64",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-n", f"test-{uuid.uuid4().hex[:8]}@localhost", "--loglevel", "INFO",
    ]  # fmt: skip
    with _celery_process(command, environment, log) as process:
        yield process


@contextmanager
def _celery_process(
    command: Sequence[str], environment: Mapping[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` running with its output in ``log``; stopped with SIGTERM (its whole process
    group SIGKILLed after 30 s) when the block ends."""
    with log.open("wb") as output:
        # Its own process group, so a test can SIGKILL the worker with its pool processes.
        process = subprocess.Popen(
            list(command),
            env=dict(environment),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def wait_until_finished(
    ids: Sequence[str], timeout: float, log: Path, *, between_polls: object = None
) -> list[Submission]:
    """Poll until every submission is scored or failed; ``between_polls()`` runs each round."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = list(Submission.objects.filter(pk__in=ids))
        if len(rows) == len(set(ids)) and all(r.status in ("scored", "failed") for r in rows):
            return rows
        if callable(between_polls):
            between_polls()
        time.sleep(0.2)
    states = Counter(Submission.objects.filter(pk__in=ids).values_list("status", flat=True))
    pytest.fail(f"not finished in {timeout} s: {dict(states)}\n--- worker log ---\n{tail(log)}")


def wait_for(condition: object, timeout: float, what: str, log: Path | None = None) -> None:
    """Poll ``condition()`` until it is true, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    pytest.fail(f"{what}: not within {timeout} s" + (f"\n{tail(log)}" if log else ""))


def tail(log: Path, chars: int = 6000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


SCORED_LINE = re.compile(r"submission=([0-9a-f-]+) item=\S+ status=scored")


def scoring_writes(log: Path) -> Counter[str]:
    """How many times the worker committed a score for each submission (from its log lines)."""
    return Counter(SCORED_LINE.findall(log.read_text(errors="replace")))


def post_batch(api_client: object, item_key: str, texts: Sequence[str]) -> list[str]:
    """Submit answers through the batch API; returns their ids."""
    response = api_client.post(  # type: ignore[attr-defined]
        "/api/v1/submissions/batch/",
        {"answers": [{"item": item_key, "text": text} for text in texts]},
        format="json",
    )
    assert response.status_code == 202, response.content
    return [s["id"] for s in response.json()["submissions"]]


def parse_metrics(text: str) -> dict[str, float]:
    """Every sample of a Prometheus text page, keyed ``name`` or ``name{label="value",...}``."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return samples


def worker_metrics(port: int) -> dict[str, float]:
    """What a worker's own exporter serves."""
    with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return parse_metrics(response.read().decode())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class CuttableProxy:
    """A TCP proxy in a thread of the test process that a test can cut and restore.

    ``cut()`` resets every connection through it and, until ``restore()``, resets each new one
    as soon as it arrives, before any byte reaches the server: to a client, the server is gone.
    The proxy keeps its port all along, so restoring cannot fail on a port still in use.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.connections = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = False
        self._closed = False
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.05)
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            open_sockets, self._open = self._open, set()
        for sock in open_sockets:
            _reset(sock)

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self.cut()
        with self._lock:
            self._closed = True

    def _accept(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    self._listener.close()
                    return
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            with self._lock:
                refused = self._cut or self._closed
            if refused:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                if self._cut or self._closed:  # cut while connecting
                    _reset(client)
                    _reset(upstream)
                    continue
                self._open |= {client, upstream}
                self.connections += 1
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(source)
                self._open.discard(target)
            _close(source)
            _close(target)


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset, as a server that went away does."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class PrivateRedis:
    """A ``redis-server`` of this test alone, persisting every write (append-only, fsync always),
    that the test can stop and start again on the same port with the same data."""

    def __init__(self, binary: str, folder: Path, log: Path) -> None:
        self.binary = binary
        self.folder = folder
        self.log = log
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.folder), "--appendonly", "yes", "--appendfsync", "always",
            "--save", "", "--daemonize", "no", "--protected-mode", "no",
        ]  # fmt: skip

        def running() -> bool:
            # A server that could not take its port yet (the old one's sockets still closing)
            # exits at once: start it again.
            if self.process is None or self.process.poll() is not None:
                with self.log.open("ab") as output:
                    self.process = subprocess.Popen(
                        command, stdout=output, stderr=subprocess.STDOUT
                    )
            return self.answers()

        self.process = None
        wait_for(running, 20, f"redis-server on port {self.port} to answer", self.log)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown save; only what the append-only file already holds survives."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextmanager
def beat_process(
    url: str, schedule: Path, log: Path, *, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``celery beat`` sending the beat schedule's tasks to ``url`` (intervals from ``env``)."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "scorebridge.settings",
        "SCOREBRIDGE_VAR_DIR": str(settings.VAR_DIR),
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": url,
        **(env or {}),
    }
    command = [
        sys.executable, "-m", "celery", "-A", "workers", "beat",
        "-s", str(schedule), "--loglevel", "INFO",
    ]  # fmt: skip
    with _celery_process(command, environment, log) as process:
        yield process
