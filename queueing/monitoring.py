"""What the broker and the workers say about themselves, asked with short timeouts.

Used by the web's ``/metrics``: it must answer quickly when the broker is down, so the probe
gives up after about ``timeout`` seconds and raises instead of waiting for the broker to return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kombu import Connection
from kombu.exceptions import ChannelError

from queueing.app import app
from queueing.catalog import QUEUES


@dataclass(frozen=True)
class BrokerProbe:
    queue_sizes: dict[str, int]
    """Messages waiting in each queue (delivered but unacknowledged ones excluded)."""
    workers: list[str]
    """Names of the workers that answered a ping in time."""


def probe(timeout: float = 1.0, ping_timeout: float = 0.5) -> BrokerProbe:
    """Queue depths from the broker, then a ping to every worker, over one connection.

    Raises the transport's error when the broker cannot be reached within ``timeout``.
    """
    with app.connection_for_read(connect_timeout=timeout) as conn:
        # One attempt, no retry loop: a scrape must not wait for the broker to come back.
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
        sizes = queue_sizes(conn, QUEUES)
        replies = app.control.ping(timeout=ping_timeout, connection=conn) or []
    return BrokerProbe(sizes, sorted(name for reply in replies for name in reply))


def queue_sizes(conn: Connection, queues: Sequence[str]) -> dict[str, int]:
    """Redis: the length of each queue's lists; RabbitMQ: a passive ``queue.declare``; the
    embedded filesystem broker: its message files. A queue not declared yet holds nothing."""
    sizes: dict[str, int] = {}
    for queue in queues:
        channel = conn.channel()
        try:
            _, count, _ = channel.queue_declare(queue=queue, passive=True)
            sizes[queue] = int(count)
        except ChannelError:  # unknown queue; RabbitMQ closes the channel, hence one per queue
            sizes[queue] = 0
        finally:
            try:
                channel.close()
            except conn.connection_errors + conn.channel_errors:
                pass
    return sizes
