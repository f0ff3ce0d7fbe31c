"""Where the CPU of one answer goes on submit -> queue -> score -> store (issue 19, item 3).

Runs in one process under cProfile, on a fresh var folder (SQLite, filesystem broker), with a
tiny in-process backbone so that the model's own time is small and the bookkeeping shows:

1. web: N answers POSTed one by one to ``/api/v1/items/<key>/submissions/`` through Django's
   test client (middleware, token auth, throttling, validation, insert, publish);
2. worker: the same answers scored by ``workers.tasks.score_submissions`` in batches of 32
   (reads, claim, model, writes).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/profile_answer_path.py [--answers 400] [--plain]

Prints ms per answer for each phase and the functions that take most of it (cumulative).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answers", type=int, default=400)
    parser.add_argument("--top", type=int, default=22)
    parser.add_argument("--plain", action="store_true", help="CPU time only, no profiler")
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="scorebridge-profile-"))
    os.environ.update(
        {
            "SCOREBRIDGE_VAR_DIR": str(var),
            "DJANGO_SETTINGS_MODULE": "scorebridge.settings",
            "CELERY_BROKER_URL": "filesystem://",
            "SCOREBRIDGE_API_RATE": "1000000/minute",
        }
    )
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    from tests.ml_core.conftest import make_tiny_backbone

    call_command("migrate", verbosity=0)
    settings.SCORING_BACKBONE = str(make_tiny_backbone(var / "tiny"))
    settings.ALLOWED_HOSTS = ["*"]
    from django.contrib.auth import get_user_model

    from scoring_plugin.models import Item, ModelVersion, ScoredAnswer
    from scoring_plugin.services import create_model_version, training_examples
    from scoring_plugin.tokens import ApiToken
    from workers import tasks

    words = "tcp udp the a is and not of to in has no yes because data layer network".split()
    item = Item.objects.create(key="profile-item", prompt="Name two protocols.", max_score=2)
    for i in range(45):
        ScoredAnswer.objects.create(
            item=item, response_key=f"r{i}", text=" ".join(words[i % 7 : i % 7 + 5]), score=i % 3
        )
    version = create_model_version(item, ModelVersion.Kind.HEAD)
    assert tasks.run_training(version, activate=True, examples=training_examples(item)) == "ready"
    user = get_user_model().objects.create_user("profile", password="x", is_staff=True)
    _, key = ApiToken.create_for(user, "profile")
    client = Client(HTTP_AUTHORIZATION=f"Token {key}")
    url = f"/api/v1/items/{item.key}/submissions/"
    texts = [f"tcp and udp {i} " + words[i % len(words)] for i in range(args.answers)]
    client.post(url, {"text": "warm up"}, content_type="application/json")

    ids: list[str] = []

    def submit() -> None:
        for text in texts:
            response = client.post(url, {"text": text}, content_type="application/json")
            assert response.status_code == 202, response.content
            ids.append(response.json()["id"])

    def score() -> None:
        for start in range(0, len(ids), 32):
            tasks.score_submissions(ids[start : start + 32])

    for name, phase in (("web: submit + publish", submit), ("worker: score + store", score)):
        profiler = cProfile.Profile()
        started = time.process_time()
        if args.plain:
            phase()
        else:
            profiler.runcall(phase)
        cpu = time.process_time() - started
        if args.plain:
            print(f"=== {name}: {1000 * cpu / args.answers:.2f} ms CPU per answer ===")
            continue
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
        stats.print_stats(args.top)
        print(f"\n=== {name}: {1000 * cpu / args.answers:.2f} ms CPU per answer (profiled) ===")
        print(out.getvalue().split("\n", 6)[-1][:12000])
    scored = sum(1 for s in item.submissions.values_list("status", flat=True) if s == "scored")
    print(f"scored {scored} of {args.answers + 1}")


if __name__ == "__main__":
    main()
