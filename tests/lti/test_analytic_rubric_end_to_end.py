"""Analytic rubrics end to end (issue 16), with real scoring, training and lms workers on the
embedded broker: a synthetic analytic item in the SAF layout (two criteria whose sum is the
score) imports from the CSVs, trains one head per criterion (the admin asked for auto), is
scored in the same worker batch as a holistic item, and its grade reaches the test platform
with the criterion scores in the comment; the pages and the version report show them."""

from __future__ import annotations

import csv
import io
import random
import re
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest
from django.urls import reverse

from lti.models import ItemLtiSettings
from scoring_plugin.models import Item, ModelVersion, Submission
from scoring_plugin.services import import_item_bank
from tests.lti.conftest import Browser
from tests.lti.lti_platform import INSTRUCTOR, TestPlatform
from tests.scoring.conftest import WORDS
from tests.scoring.realworker import broker, worker_process

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BROKER = "filesystem://"
FILLERS = [w for w in WORDS if w not in ("tcp", "udp", "because")]


def _item_bank(answers: int = 36) -> tuple[bytes, bytes]:
    """items.csv and responses.csv of two SAF-style items: ``rubric`` is analytic (content:
    how many of tcp, udp the answer names, 0-2; reasoning: whether it says because, 0-1; the
    score is their sum), ``holistic`` scores how many of tcp, udp it names."""
    items = (
        "item_id,language,prompt,reference_answer,max_score,criterion:content,"
        "criterion:content:feedback_2,criterion:reasoning,criterion:reasoning:feedback_0\n"
        "rubric,en,Name the transport protocols and say why.,tcp and udp because,3,2,"
        "Both protocols named.,1,Say why.\n"
        "holistic,en,Name the transport protocols.,tcp and udp,2,,,,\n"
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["item_id", "response_id", "text", "score", "split", "score:content",
                     "score:reasoning"])  # fmt: skip
    rng = random.Random(16)
    for i in range(answers):
        content, reasoning = i % 3, (i // 3) % 2
        words = rng.sample(FILLERS, 4) + ["tcp", "udp"][:content] + ["because"] * reasoning
        rng.shuffle(words)
        # the total is left blank on every other row: it is the criteria's sum
        total = "" if i % 2 else str(content + reasoning)
        writer.writerow(["rubric", f"r{i}", " ".join(words), total, "", content, reasoning])
        words = rng.sample(FILLERS, 4) + ["tcp", "udp"][:content]
        rng.shuffle(words)
        writer.writerow(["holistic", f"h{i}", " ".join(words), content, "", "", ""])
    return items.encode(), out.getvalue().encode()


def _wait(what: str, ready: Callable[[], object], timeout: float, logs: list[Path]) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = ready()
        if found:
            return found
        time.sleep(0.5)
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs if log.exists())
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


def _token(url: str) -> str:
    return url.split("/lti/s/")[1].split("/")[0]


def test_an_analytic_item_imports_trains_is_served_with_a_holistic_one_and_reaches_the_gradebook(
    platform: TestPlatform,
    make_browser: type[Browser],
    admin_client,  # type: ignore[no-untyped-def]
    tiny_backbone: Path,
    settings,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    settings.SCORING_BACKBONE = str(tiny_backbone)
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    summary = import_item_bank(*_item_bank())
    assert (summary.items_created, summary.answers_created) == (2, 72)
    rubric, holistic = Item.objects.get(key="rubric"), Item.objects.get(key="holistic")
    for item in (rubric, holistic):  # the gradebook gets the score however confident the model
        ItemLtiSettings.objects.create(item=item, post_mode=ItemLtiSettings.PostMode.NOW)
    logs = [tmp_path / f"{name}.log" for name in ("scoring", "training", "lms")]
    with ExitStack() as stack:
        stack.enter_context(broker(BROKER))
        for queue, log in zip(("training", "lms"), logs[1:], strict=True):
            stack.enter_context(worker_process(BROKER, tiny_backbone, log, queues=queue))
        response = admin_client.post(
            reverse("admin:scoring_plugin_item_changelist"),
            {"action": "train_auto", "_selected_action": [str(rubric.pk), str(holistic.pk)]},
            follow=True,
        )
        notes = [str(m) for m in response.context["messages"]]
        assert any("rubric is an analytic item" in n for n in notes), notes
        versions = _wait(
            "the training worker to make both versions active",
            lambda: (
                list(ModelVersion.objects.filter(is_active=True, status="ready").order_by("item"))
                if ModelVersion.objects.filter(is_active=True).count() == 2
                else None
            ),
            600,
            logs,
        )
        kinds = {v.item.key: v.kind for v in versions}  # type: ignore[attr-defined]
        assert kinds == {"rubric": ModelVersion.Kind.HEAD, "holistic": ModelVersion.Kind.AUTO}

        # answers of three students wait in the scoring queue; the scoring worker takes the
        # first alone (its pool is idle) and the others, arrived meanwhile, in one batch
        pages: dict[str, str] = {}
        ids: dict[str, str] = {}
        for sub in ("student-3", "student-2", "student-1"):
            browser = make_browser()
            for key, text in (("rubric", "tcp and udp because data"), ("holistic", "tcp layer")):
                pages[key] = _token(
                    browser.open(platform, sub=sub, item_key=key, resource_link_id=f"link-{key}")
                )
                answer = browser.post(
                    f"/lti/s/{pages[key]}/answer/", {"answer": text}, HTTP_ACCEPT="application/json"
                )
                assert answer.status_code == 201, answer.content
                ids[key] = answer.json()["id"]
        student = browser
        stack.enter_context(worker_process(BROKER, tiny_backbone, logs[0], queues="scoring"))
        grades = _wait(
            "the lms worker to post both grades",
            lambda: s if len(s := platform.scores_for("student-1")) == 2 else None,
            300,
            logs,
        )
    scored = Submission.objects.get(pk=ids["rubric"])
    assert scored.status == Submission.Status.SCORED
    criteria = scored.criterion_scores
    assert set(criteria) == {"content", "reasoning"}
    assert 0 <= criteria["content"] <= 2 and 0 <= criteria["reasoning"] <= 1
    assert scored.score == criteria["content"] + criteria["reasoning"]
    assert Submission.objects.get(pk=ids["holistic"]).criterion_scores == {}
    # one batch held both items: the multi-criterion heads and the holistic item together
    assert re.search(r"batch answers=[2-6] items=holistic,rubric\n", logs[0].read_text())

    by_item = {g["scoreMaximum"]: g for g in grades}  # type: ignore[attr-defined]
    grade = by_item[3.0]
    assert grade["scoreGiven"] == float(scored.score)
    # (with "Automatic score; an instructor will review it." before it when it needs review)
    assert str(grade["comment"]).endswith(
        f"Criteria: content {criteria['content']}/2, reasoning {criteria['reasoning']}/1."
    )
    assert "Criteria" not in str(by_item[2.0].get("comment", ""))

    state = student.get(f"/lti/s/{pages['rubric']}/status/").json()
    (shown,) = state["submissions"]
    assert [(c["name"], c["score"], c["max_score"]) for c in shown["criteria"]] == [
        ("content", criteria["content"], 2),
        ("reasoning", criteria["reasoning"], 1),
    ]
    teacher = make_browser()
    review = _token(teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR],
                                 item_key="rubric", resource_link_id="link-rubric"))  # fmt: skip
    page = teacher.get(f"/lti/s/{review}/review/{scored.pk}/").content.decode()
    assert 'id="criterion-scores"' in page and f"content: {criteria['content']} of 2" in page

    admin_page = admin_client.get(
        reverse("admin:scoring_plugin_item_change", args=[rubric.pk])
    ).content.decode()
    metrics = ModelVersion.objects.get(item=rubric, is_active=True).metrics
    for key in ("exact_match", "qwk/content", "accuracy/content", "qwk/reasoning"):
        assert isinstance(metrics[key], float), key
    assert "exact match (every criterion right)" in admin_page
    assert "QWK: criterion reasoning" in admin_page
