"""The processes the README starts, each its own: a scoring, a training and an lms worker and
celery beat, on the default embedded broker. An admin trains an item from the admin action, a
student answers through an LTI launch, and the grade arrives at the test platform."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest
from django.urls import reverse

from lti.models import ItemLtiSettings, LtiSubmission
from scoring_plugin.models import Item, ModelVersion, Submission
from tests.lti.lti_platform import TestPlatform
from tests.scoring.conftest import add_scored_answers
from tests.scoring.realworker import beat_process, broker, worker_process

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BROKER = "filesystem://"


def _wait(what: str, ready: Callable[[], object], timeout: float, logs: list[Path]) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = ready()
        if found:
            return found
        time.sleep(0.5)
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs if log.exists())
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


def test_trained_from_admin_an_lti_answer_is_scored_and_its_grade_reaches_the_platform(
    platform: TestPlatform,
    item: Item,
    browser,  # type: ignore[no-untyped-def]
    admin_client,  # type: ignore[no-untyped-def]
    tiny_backbone: Path,
    settings,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    settings.SCORING_BACKBONE = str(tiny_backbone)
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    add_scored_answers(item, 30)
    # the gradebook gets the score however confident the model is (no review in the way)
    ItemLtiSettings.objects.create(item=item, post_mode=ItemLtiSettings.PostMode.NOW)
    logs = [tmp_path / f"{name}.log" for name in ("scoring", "training", "lms", "beat")]
    with ExitStack() as stack:
        stack.enter_context(broker(BROKER))
        for queue, log in zip(("scoring", "training", "lms"), logs, strict=False):
            stack.enter_context(worker_process(BROKER, tiny_backbone, log, queues=queue))
        stack.enter_context(
            beat_process(
                BROKER,
                tmp_path / "beat-schedule",
                logs[3],
                env={"SCOREBRIDGE_SWEEP_INTERVAL_SECONDS": "2"},
            )
        )
        response = admin_client.post(
            reverse("admin:scoring_plugin_item_changelist"),
            {"action": "train_auto", "_selected_action": [str(item.pk)]},
        )
        assert response.status_code == 302
        version = _wait(
            "the training worker to make a version active",
            lambda: ModelVersion.objects.filter(item=item, is_active=True, status="ready").first(),
            600,
            logs,
        )
        assert isinstance(version, ModelVersion) and version.kind == ModelVersion.Kind.AUTO

        page = browser.open(platform)
        token = page.split("/lti/s/")[1].split("/")[0]
        answer = browser.post(
            f"/lti/s/{token}/answer/",
            {"answer": "tcp and udp are transport protocols"},
            HTTP_ACCEPT="application/json",
        )
        assert answer.status_code == 201
        grades = _wait(
            "the lms worker to post the grade",
            lambda: platform.scores_for("student-1"),
            300,
            logs,
        )
    submission = Submission.objects.get(pk=answer.json()["id"])
    assert submission.status == Submission.Status.SCORED
    assert submission.model_version_id == version.pk
    (grade,) = grades  # type: ignore[misc]
    assert grade["gradingProgress"] == "FullyGraded"
    assert grade["scoreGiven"] == float(submission.score)
    link = LtiSubmission.objects.get(pk=submission.pk)
    assert link.passback_status == LtiSubmission.Passback.POSTED
    # beat sent the sweeper to the lms queue while the answer was on its way
    assert "sweep_stuck_submissions" in logs[2].read_text() + logs[3].read_text()
