"""Load test: submit answers through the HTTP API and measure how fast they are scored.

Loopback only, bounded in count and time. Two phases:

1. low load: answers sent one at a time, each waited for; prints p50/p95 submit-to-scored.
2. burst: N answers spread evenly over the items (every item with an active model, or those
   ``--items`` names), sent by several threads at once; prints the sustained throughput
   (answers scored per second, first submit to last score), p50/p95 submit-to-scored latency,
   and checks every answer was scored exactly once.

    python scripts/load_test.py --url http://127.0.0.1:8000 --token TOKEN \
        [--burst 2000] [--single 50] [--responses responses.csv] [--split test] \
        [--items 'saf-en-*,saf-de-*'] [--deadline 600]

With the SAF data set imported and trained (``scripts/demo.sh ../shared/datasets/saf``), give
``--responses ../shared/datasets/saf/responses.csv --items 'saf-*'`` to spread the burst over
its 30 items with their own students' answers.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import random
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

import urllib3

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
FALLBACK = ["I think it is because of the temperature.", "No idea.", "It depends on density."]


WAIT_PROBE = 16
"""Oldest pending answers polled per round while a burst is scored."""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class Client:
    """The API over urllib3 directly: the load script shares the machine it measures, and
    requests' per-call machinery cost it about as much CPU again per answer."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base.rstrip("/")
        self.http = urllib3.PoolManager(maxsize=32, retries=False, timeout=30.0)
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def _call(self, method: str, path: str, body: object = None) -> Any:
        response = self.http.request(
            method,
            self.base + path,
            body=None if body is None else json.dumps(body),
            headers=self.headers,
        )
        if response.status >= 400:
            raise RuntimeError(f"{method} {path}: HTTP {response.status}: {response.data[:300]!r}")
        return json.loads(response.data)

    def items(self) -> list[str]:
        return [
            item["key"] for item in self._call("GET", "/api/v1/items/") if item["active_version"]
        ]

    def submit(self, key: str, text: str) -> str:
        return str(self._call("POST", f"/api/v1/items/{key}/submissions/", {"text": text})["id"])

    def get(self, submission_id: str) -> dict[str, object]:
        body: dict[str, object] = self._call("GET", f"/api/v1/submissions/{submission_id}/")
        return body


def select_items(items: list[str], patterns: str | None) -> list[str]:
    """The items matching any comma-separated shell pattern (all of them without patterns)."""
    if not patterns:
        return items
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    return [key for key in items if any(fnmatch.fnmatchcase(key, p) for p in wanted)]


def answers_for(items: list[str], path: str | None, split: str | None) -> dict[str, list[str]]:
    texts: dict[str, list[str]] = {key: [] for key in items}
    if path:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            for row in csv.DictReader(handle):
                if split and row.get("split", "") != split:
                    continue
                if row["item_id"] in texts and row["text"].strip():
                    texts[row["item_id"]].append(row["text"])
    return {key: (values or FALLBACK) for key, values in texts.items()}


def wait_all(client: Client, ids: list[str], deadline: float) -> dict[str, dict[str, object]]:
    """Wait until every answer is final, then read them all once.

    Only the oldest few pending answers are polled (answers are scored roughly in order): polling
    every pending answer each round made the web server, on the same cores, the bottleneck of the
    measurement. Throughput and latency come from the stored timestamps, not from polling.
    """
    pending = list(ids)
    with ThreadPoolExecutor(8) as pool:
        while pending and time.monotonic() < deadline:
            head = pending[:WAIT_PROBE]
            final = {
                str(body["id"])
                for body in pool.map(client.get, head)
                if body["status"] in ("scored", "failed")
            }
            pending = [i for i in pending if i not in final]
            # at most a few rounds a second: polling shares the cores with the worker it waits for
            time.sleep(0.5 if len(final) < len(head) else 0.2)
        bodies = list(pool.map(client.get, ids))
    return {str(b["id"]): b for b in bodies if b["status"] in ("scored", "failed")}


def low_load(
    client: Client, texts: dict[str, list[str]], count: int, rng: random.Random
) -> dict[str, float]:
    """Answers sent one at a time, each waited for; returns p50/p95 in ms, as the client saw
    them (submit to a poll that read the score) and as stored (created_at to scored_at)."""
    latencies = []
    server = []
    for _ in range(count):
        key = rng.choice(list(texts))
        started = time.perf_counter()
        submission_id = client.submit(key, rng.choice(texts[key]))
        while True:
            body = client.get(submission_id)
            if body["status"] in ("scored", "failed"):
                break
            time.sleep(0.005)
        latencies.append((time.perf_counter() - started) * 1000)
        server.append((parse_time(body["scored_at"]) - parse_time(body["created_at"])) * 1000)
        time.sleep(0.05)
    figures = {
        "client_p50_ms": percentile(latencies, 0.5),
        "client_p95_ms": percentile(latencies, 0.95),
        "stored_p50_ms": percentile(server, 0.5),
        "stored_p95_ms": percentile(server, 0.95),
    }
    print(
        f"low load, {count} answers one at a time: submit-to-scored p50 "
        f"{figures['client_p50_ms']:.0f} ms, p95 {figures['client_p95_ms']:.0f} ms "
        f"(client, incl. polling); stored created->scored p50 {figures['stored_p50_ms']:.0f} ms, "
        f"p95 {figures['stored_p95_ms']:.0f} ms"
    )
    return figures


def burst(
    client: Client,
    texts: dict[str, list[str]],
    count: int,
    rng: random.Random,
    deadline: float,
    on_submitted: Callable[[], None] | None = None,
) -> dict[str, float]:
    """The burst; returns its figures (answers/s, latencies in ms, counts). ``on_submitted`` is
    called when every answer has been submitted, before the waiting (and polling) starts."""
    keys = list(texts)
    work = [(keys[i % len(keys)], rng.choice(texts[keys[i % len(keys)]])) for i in range(count)]
    started = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(lambda kv: client.submit(*kv), work))
    submitted = time.perf_counter() - started
    if on_submitted is not None:
        on_submitted()
    done = wait_all(client, ids, deadline)
    scored = [b for b in done.values() if b["status"] == "scored"]
    figures: dict[str, float] = {
        "answers": count,
        "items": len(keys),
        "submit_per_s": count / submitted,
        "scored": len(scored),
        "failed": len(done) - len(scored),
        "lost": len(ids) - len(done),
    }
    if not scored:
        print("burst: nothing was scored", file=sys.stderr)
        return figures
    created = [parse_time(str(b["created_at"])) for b in scored]
    finished = [parse_time(str(b["scored_at"])) for b in scored]
    span = max(finished) - min(created)
    latency = [(f - c) * 1000 for c, f in zip(created, finished, strict=True)]
    figures.update(
        {
            "span_s": span,
            "per_s": len(scored) / span,
            "p50_ms": percentile(latency, 0.5),
            "p95_ms": percentile(latency, 0.95),
        }
    )
    print(
        f"burst of {count} answers over {len(keys)} items: submitted in {submitted:.1f} s "
        f"({figures['submit_per_s']:.0f}/s); scored {len(scored)}, failed "
        f"{figures['failed']:.0f}, lost {figures['lost']:.0f}; throughput "
        f"{figures['per_s']:.0f} answers/s (first submit to last score, {span:.1f} s); "
        f"submit-to-scored p50 {figures['p50_ms']:.0f} ms, p95 {figures['p95_ms']:.0f} ms"
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", required=True)
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--single", type=int, default=50)
    parser.add_argument("--responses", help="responses.csv to draw answer texts from")
    parser.add_argument("--split", help="only answers of this split of --responses (e.g. test)")
    parser.add_argument(
        "--items", help="comma-separated item keys or shell patterns (default: every trained item)"
    )
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds, whole run")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    host = urlparse(args.url).hostname or ""
    if host not in LOOPBACK:
        parser.error("the load test only targets this machine (127.0.0.1, localhost, ::1)")
    if not 0 < args.burst <= 20_000:
        parser.error("--burst must be between 1 and 20000")
    deadline = time.monotonic() + args.deadline
    client = Client(args.url, args.token)
    items = select_items(client.items(), args.items)
    if not items:
        parser.error("no item (matching --items) has an active model; train some first")
    rng = random.Random(args.seed)
    texts = answers_for(items, args.responses, args.split)
    from_file = sum(1 for key in items if texts[key] is not FALLBACK)
    print(f"{len(items)} item(s), {from_file} with answers from --responses")
    if args.single:
        low_load(client, texts, args.single, rng)
    figures = burst(client, texts, args.burst, rng, deadline)
    return 0 if figures["scored"] == args.burst else 1


if __name__ == "__main__":
    sys.exit(main())
