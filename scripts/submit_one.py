"""Submit one answer through the HTTP API and wait for its score (used by demo.sh).

python scripts/submit_one.py BASE_URL TOKEN ITEM_BANK_FOLDER
"""

from __future__ import annotations

import csv
import sys
import time

import requests


def main(base: str, token: str, bank: str) -> int:
    headers = {"Authorization": f"Token {token}"}
    with open(f"{bank}/responses.csv", newline="", encoding="utf-8-sig") as handle:
        row = next(csv.DictReader(handle))
    started = time.perf_counter()
    response = requests.post(
        f"{base}/api/v1/items/{row['item_id']}/submissions/",
        json={"text": row["text"]},
        headers=headers,
        timeout=10,
    )
    response.raise_for_status()
    url = response.headers["Location"]
    deadline = started + 120
    while time.perf_counter() < deadline:
        body = requests.get(url, headers=headers, timeout=10).json()
        if body["status"] in ("scored", "failed"):
            elapsed = time.perf_counter() - started
            print(
                f"  item {row['item_id']}: status {body['status']}, score {body['score']} "
                f"(human score {row['score']}), model {body['model_version']}, "
                f"submit-to-scored {elapsed * 1000:.0f} ms {body['error']}"
            )
            return 0 if body["status"] == "scored" else 1
        time.sleep(0.05)
    print("  no score within 120 s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
