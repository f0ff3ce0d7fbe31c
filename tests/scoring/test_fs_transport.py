"""The embedded filesystem broker never hands a consumer half a message."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from queue import Empty

import pytest
from kombu import Connection

from queueing.app import filesystem_transport_options


def _connection(folder: Path) -> Connection:
    return Connection(
        "filesystem://",
        transport="queueing.fs_transport:Transport",
        transport_options=filesystem_transport_options(folder),
    )


def test_messages_appear_whole_while_a_consumer_polls(tmp_path: Path) -> None:
    received: list[dict[str, object]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def consume() -> None:
        with _connection(tmp_path) as connection:
            channel = connection.default_channel
            while not done.is_set() or len(received) < 300:
                try:
                    received.append(channel._get("scoring"))
                except Empty:
                    if done.is_set() and not os.listdir(tmp_path / "queue"):
                        return
                except BaseException as exc:  # noqa: BLE001 - the test reports any failure
                    errors.append(exc)
                    return

    consumer = threading.Thread(target=consume)
    consumer.start()
    with _connection(tmp_path) as connection:
        channel = connection.default_channel
        for n in range(300):
            channel._put("scoring", {"n": n, "body": "x" * 4000})
    done.set()
    consumer.join(timeout=60)
    assert errors == []
    assert sorted(m["n"] for m in received) == list(range(300))
    assert list((tmp_path / "staging").iterdir()) == []


def test_an_undecodable_file_is_set_aside_not_fatal(tmp_path: Path) -> None:
    with _connection(tmp_path) as connection:
        channel = connection.default_channel
        (tmp_path / "queue" / "1_broken.scoring.msg").write_bytes(b"")
        with pytest.raises(Empty):
            channel._get("scoring")
        channel._put("scoring", {"ok": True})
        assert channel._get("scoring") == {"ok": True}
    assert len(list((tmp_path / "rejected").iterdir())) == 1
