"""Issue 16, item 3: training starts by itself when the learning curve clears the baseline (once
per new evidence), and the version is activated only when it reaches the item's target QWK;
until then answers keep going to the instructor."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import transaction

from scoring_plugin.cold_start import (
    request_report_if_due,
    start_training_if_due,
    training_state,
)
from scoring_plugin.models import AuditLog, ColdStartReport, Item, ModelVersion, Submission
from scoring_plugin.overrides import apply_override
from scoring_plugin.services import activate_if_still_current, create_model_version
from tests.factories import ItemFactory, SubmissionFactory
from tests.scoring.conftest import add_scored_answers
from tests.scoring.realworker import broker, wait_for, worker_process

TEXTS = {0: "no idea at all", 1: "tcp is used", 2: "tcp and udp are used"}


def _ready_report(item: Item, scored: int, *, clears: bool = True) -> ColdStartReport:
    return ColdStartReport.objects.create(
        item=item,
        status=ColdStartReport.Status.READY,
        result={"scored": scored, "waiting": 0, "clears_baseline": clears, "curve": None},
    )


@pytest.mark.django_db
def test_training_starts_once_per_new_evidence_and_never_beside_a_running_or_active_version(
    settings, django_capture_on_commit_callbacks, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    settings.SCOREBRIDGE_COLD_START_TARGET_QWK = 0.8
    sent: list[tuple[int, bool]] = []
    monkeypatch.setattr("queueing.dispatch.send_training", lambda pk, act: sent.append((pk, act)))
    item = ItemFactory()
    add_scored_answers(item, 12)
    reviewed = SubmissionFactory(item=item, waiting_for=Submission.WaitingFor.MODEL)
    apply_override(reviewed, 2, "", "lti:Ms Smith", via=Submission.ReviewedVia.GROUP)

    assert start_training_if_due(_ready_report(item, 13, clears=False)) is None
    report = ColdStartReport.objects.get(item=item)
    report.result = {**report.result, "clears_baseline": True}
    with django_capture_on_commit_callbacks(execute=True):
        version = start_training_if_due(report)
    assert version is not None and sent == [(version.pk, True)]
    assert version.activation_qwk == 0.8 and version.kind == settings.SCORING_TRAIN_KIND
    # the instructor's score is training data now, with who gave it
    assert item.scored_answers.get(response_key=f"review:{reviewed.pk}").scored_by == (
        "lti:Ms Smith"
    )
    assert AuditLog.objects.filter(action="retrain", actor="scorebridge:cold start").count() == 1
    assert training_state(item) == f"training {version.label} on the training queue"

    # the same evidence again (a redelivered task, a second report): nothing new
    assert start_training_if_due(ColdStartReport.objects.get(item=item)) is None
    # more evidence while the version trains: still nothing
    report.result["scored"] = 20
    assert start_training_if_due(report) is None
    # it finished below the target: more evidence starts one more training, once
    ModelVersion.objects.filter(pk=version.pk).update(status=ModelVersion.Status.READY)
    with django_capture_on_commit_callbacks(execute=True):
        second = start_training_if_due(report)
    assert second is not None and second.number == version.number + 1
    assert start_training_if_due(report) is None
    assert len(sent) == 2


@pytest.mark.django_db
def test_a_new_report_is_queued_after_a_batch_of_new_human_scores(
    django_capture_on_commit_callbacks, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    sent: list[int] = []
    monkeypatch.setattr("queueing.dispatch.send_cold_start", sent.append)
    item = ItemFactory()
    add_scored_answers(item, 9)
    waiting = [SubmissionFactory(item=item, waiting_for="model") for _ in range(12)]
    with django_capture_on_commit_callbacks(execute=True):
        apply_override(waiting[0], 1, "", "admin:ada", via=Submission.ReviewedVia.ADMIN)
    assert sent == [item.pk]  # 10 scored: enough for a curve
    with django_capture_on_commit_callbacks(execute=True):
        apply_override(waiting[1], 1, "", "admin:ada", via=Submission.ReviewedVia.ADMIN)
    assert sent == [item.pk]  # that report is still pending
    ColdStartReport.objects.filter(item=item).update(
        status=ColdStartReport.Status.READY, result={"scored": 11}, batch_size=5
    )
    for submission in waiting[2:6]:
        with django_capture_on_commit_callbacks(execute=True):
            apply_override(submission, 2, "", "admin:ada", via=Submission.ReviewedVia.ADMIN)
    assert sent == [item.pk]  # 15 scored, 4 new since the report: not a batch yet
    with django_capture_on_commit_callbacks(execute=True):
        apply_override(waiting[6], 0, "", "admin:ada", via=Submission.ReviewedVia.ADMIN)
    assert sent == [item.pk, item.pk]
    assert not request_report_if_due(ItemFactory())  # nothing scored: nothing to compute


@pytest.mark.django_db
def test_a_version_below_the_items_target_stays_inactive_and_answers_keep_waiting() -> None:
    item = ItemFactory(target_qwk=0.75)
    version = create_model_version(item, ModelVersion.Kind.AUTO, activation_qwk=0.75)
    ModelVersion.objects.filter(pk=version.pk).update(
        status=ModelVersion.Status.READY, metrics={"qwk": 0.62}
    )
    version.refresh_from_db()
    assert not activate_if_still_current(version)  # what the training worker calls when done
    version.refresh_from_db()
    assert not version.is_active
    assert version.note == (
        "Not activated: QWK 0.620, below the item's target 0.75; answers keep going to the "
        "instructor."
    )
    assert "answers keep going to the instructor" in training_state(item)
    better = create_model_version(item, ModelVersion.Kind.AUTO, activation_qwk=0.75)
    ModelVersion.objects.filter(pk=better.pk).update(
        status=ModelVersion.Status.READY, metrics={"qwk": 0.81}
    )
    better.refresh_from_db()
    assert activate_if_still_current(better)
    assert training_state(item) == f"active: {better.label}"
    # a version an admin trains (no activation QWK) is activated as before
    plain = create_model_version(item, ModelVersion.Kind.AUTO)
    ModelVersion.objects.filter(pk=plain.pk).update(
        status=ModelVersion.Status.READY, metrics={"qwk": 0.5}, active_at_start=better
    )
    plain.refresh_from_db()
    assert activate_if_still_current(plain)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_instructor_scores_start_training_on_a_real_worker_and_the_model_takes_over(
    scoring_settings, tiny_backbone: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Answers wait for a human score; the instructor scores 15 of them; the report is queued
    by itself, a ``celery worker`` computes it, starts training on the training queue, the
    version reaches the item's target and is activated, and the answers still waiting are
    scored by it."""
    item = ItemFactory(target_qwk=0.01)
    url = "filesystem://"
    log = tmp_path / "worker.log"
    with broker(url):
        waiting = [
            SubmissionFactory(item=item, text=TEXTS[i % 3] + f" {i}", waiting_for="model")
            for i in range(20)
        ]
        with worker_process(url, tiny_backbone, log, queues="training,scoring"):
            with transaction.atomic():  # one group action: the report comes once, after it
                for i, submission in enumerate(waiting[:15]):
                    apply_override(submission, i % 3, "", "lti:Ms Smith", via="group")
            wait_for(
                lambda: item.model_versions.filter(is_active=True).exists(),
                300,
                "an active version trained by itself",
                log,
            )
            wait_for(
                lambda: all(
                    s.status == "scored"
                    for s in Submission.objects.filter(pk__in=[w.pk for w in waiting[15:]])
                ),
                120,
                "the waiting answers scored by the new model",
                log,
            )
    version = item.model_versions.get(is_active=True)
    assert version.activation_qwk == 0.01 and version.number == 1
    report = ColdStartReport.objects.get(item=item)
    assert report.result["clears_baseline"] and report.trained_on == 15
    assert item.scored_answers.filter(source="review", scored_by="lti:Ms Smith").count() == 15


@pytest.mark.django_db
def test_a_broker_that_is_away_does_not_fail_the_instructors_score(
    django_capture_on_commit_callbacks, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    def away(item_id: int) -> None:
        raise ConnectionRefusedError("no broker")

    monkeypatch.setattr("queueing.dispatch.send_cold_start", away)
    item = ItemFactory()
    add_scored_answers(item, 9)
    submission = SubmissionFactory(item=item, waiting_for=Submission.WaitingFor.MODEL)
    with django_capture_on_commit_callbacks(execute=True):
        apply_override(submission, 1, "", "admin:ada", via=Submission.ReviewedVia.ADMIN)
    assert Submission.objects.get(pk=submission.pk).reviewed_score == 1
    assert ColdStartReport.objects.get(item=item).status == ColdStartReport.Status.PENDING
