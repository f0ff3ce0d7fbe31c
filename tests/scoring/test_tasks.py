"""The worker's task bodies, called in-process: scoring, idempotency, failures, the sweeper."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from queueing import dispatch
from scoring_plugin.models import ModelVersion, Submission
from scoring_plugin.services import activate_version
from scoring_plugin.signals import submissions_finished
from tests.factories import ItemFactory, SubmissionFactory
from tests.scoring.conftest import train_active_version
from workers import tasks


@pytest.fixture()
def finished(db) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    seen: list[tuple[str, str]] = []

    def receiver(sender: object, statuses: dict[str, str], **kwargs: object) -> None:
        seen.extend(statuses.items())

    submissions_finished.connect(receiver)
    yield seen
    submissions_finished.disconnect(receiver)


def test_scores_with_the_active_version_once(
    trained_item, finished, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    submission = SubmissionFactory(item=trained_item, text="tcp udp the", status="queued")
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.score_submissions([str(submission.pk)]) == {str(submission.pk): "scored"}
    submission.refresh_from_db()
    assert submission.score in (0, 1, 2)
    assert len(submission.probabilities) == 3
    assert abs(sum(submission.probabilities) - 1) < 1e-4
    assert submission.confidence == pytest.approx(max(submission.probabilities))
    assert submission.model_version == trained_item.active_version
    assert finished == [(str(submission.pk), "scored")]
    first = (submission.score, submission.scored_at)
    # A redelivered message changes nothing.
    assert tasks.score_submissions([str(submission.pk)]) == {str(submission.pk): "scored"}
    submission.refresh_from_db()
    assert (submission.score, submission.scored_at) == first


def test_a_new_active_version_is_used_without_restart(trained_item) -> None:  # type: ignore[no-untyped-def]
    first = SubmissionFactory(item=trained_item, text="tcp")
    tasks.score_submissions([str(first.pk)])
    newer = train_active_version(trained_item)
    second = SubmissionFactory(item=trained_item, text="tcp")
    tasks.score_submissions([str(second.pk)])
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.model_version.number == 1
    assert second.model_version == newer and newer.number == 2


def test_item_without_model_waits_for_one_and_counts_no_attempt(db, scoring_settings) -> None:  # type: ignore[no-untyped-def]
    submission = SubmissionFactory(item=ItemFactory(key="untrained"), status="queued")
    for _ in range(10):
        assert tasks.score_submissions([str(submission.pk)]) == {str(submission.pk): "waiting"}
    submission.refresh_from_db()
    assert submission.status == Submission.Status.RECEIVED
    assert submission.waiting_for == Submission.WaitingFor.MODEL
    assert "waiting for an active model" in submission.error
    assert submission.attempts == 0


def test_broken_artifact_fails_the_answer_not_the_worker(trained_item, tmp_path) -> None:  # type: ignore[no-untyped-def]
    version = trained_item.active_version
    ModelVersion.objects.filter(pk=version.pk).update(artifact_key="gone")
    submission = SubmissionFactory(item=trained_item)
    assert tasks.score_submissions([str(submission.pk)]) == {str(submission.pk): "failed"}
    submission.refresh_from_db()
    assert "cannot be loaded" in submission.error


def test_unknown_submission_is_a_no_op(db) -> None:  # type: ignore[no-untyped-def]
    missing = "00000000-0000-0000-0000-000000000000"
    assert tasks.score_submissions([missing]) == {missing: "missing"}


def test_only_ready_versions_can_be_activated(db) -> None:  # type: ignore[no-untyped-def]
    from django.core.exceptions import ValidationError

    version = ModelVersion.objects.create(item=ItemFactory(), number=1, status="training")
    with pytest.raises(ValidationError, match="only a ready version"):
        activate_version(version)


def test_sweeper_requeues_stuck_answers_without_counting_or_failing_them(
    db, settings, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    sent: list[str] = []
    monkeypatch.setattr(dispatch, "send_score", sent.append)
    settings.SCOREBRIDGE_REQUEUE_AFTER_SECONDS = 60
    settings.SCOREBRIDGE_MAX_SCORING_ATTEMPTS = 3
    old = timezone.now() - timedelta(minutes=5)
    stuck = SubmissionFactory(status="queued", attempts=1)
    never_sent = SubmissionFactory(status="received")
    many_sends = SubmissionFactory(status="queued", attempts=3)
    fresh = SubmissionFactory(status="queued", attempts=1)
    no_model = SubmissionFactory(status="received", waiting_for="model")
    Submission.objects.filter(pk__in=[stuck.pk, never_sent.pk, many_sends.pk, no_model.pk]).update(
        created_at=old, queued_at=old
    )
    Submission.objects.filter(pk=fresh.pk).update(queued_at=timezone.now())
    assert tasks.sweep_stuck_submissions.run() == 3
    assert sorted(sent) == sorted([str(stuck.pk), str(never_sent.pk), str(many_sends.pk)])
    many_sends.refresh_from_db()
    assert many_sends.status == Submission.Status.QUEUED
    assert many_sends.attempts == 3  # sending again is not an attempt
    assert many_sends.waiting_for == Submission.WaitingFor.WORKER
    assert many_sends.error == "waiting for a scoring worker"


def test_a_mixed_batch_is_scored_in_one_call_and_failures_stay_apart(trained_item) -> None:  # type: ignore[no-untyped-def]
    untrained = ItemFactory(key="no-model")
    good = [SubmissionFactory(item=trained_item, text=t) for t in ("tcp udp", "data", "udp")]
    orphan = SubmissionFactory(item=untrained)
    ids = [str(s.pk) for s in (*good, orphan)]
    outcome = tasks.score_submissions(ids + ids[:1])  # a duplicate id in the same batch
    assert outcome == {**{str(s.pk): "scored" for s in good}, str(orphan.pk): "waiting"}
    assert Submission.objects.filter(status="scored").count() == 3


def test_a_database_blip_is_waited_for(trained_item, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from django.db import OperationalError

    submission = SubmissionFactory(item=trained_item)
    real = tasks._score_submissions
    calls = []

    def flaky(ids, claimed):  # type: ignore[no-untyped-def]
        calls.append(ids)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(ids, claimed)

    monkeypatch.setattr(tasks, "_score_submissions", flaky)
    monkeypatch.setattr(tasks.time, "sleep", lambda seconds: None)
    assert tasks.score_submissions([str(submission.pk)]) == {str(submission.pk): "scored"}
    assert len(calls) == 2


def test_a_database_that_stays_away_leaves_rows_for_the_sweeper(db, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from django.db import OperationalError

    submission = SubmissionFactory(status="queued")

    def down(ids, claimed):  # type: ignore[no-untyped-def]
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(tasks, "_score_submissions", down)
    monkeypatch.setattr(tasks.time, "sleep", lambda seconds: None)
    assert tasks.score_submissions([str(submission.pk)]) == {str(submission.pk): "deferred"}
    submission.refresh_from_db()
    assert submission.status == "queued"


def test_a_failed_answer_scored_again_is_scored_and_announced(
    trained_item, finished, monkeypatch, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    from scoring_plugin.services import rescore_submissions

    sent: list[str] = []
    monkeypatch.setattr(dispatch, "send_score", sent.append)
    failed = SubmissionFactory(item=trained_item, text="tcp udp", status="failed", attempts=5)
    Submission.objects.filter(pk=failed.pk).update(error="not scored after 5 attempts")
    scored = SubmissionFactory(item=trained_item, status="scored", score=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert rescore_submissions([str(failed.pk), str(scored.pk)]) == 1  # only failed ones
    assert sent == [str(failed.pk)]
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.error) == ("queued", 0, "")
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.score_submissions(sent) == {str(failed.pk): "scored"}
    assert finished == [(str(failed.pk), "scored")]  # the gradebook follows


def test_attempts_are_counted_when_a_worker_takes_an_answer(trained_item, settings) -> None:  # type: ignore[no-untyped-def]
    settings.SCOREBRIDGE_MAX_SCORING_ATTEMPTS = 3
    fresh = SubmissionFactory(item=trained_item, text="tcp", status="queued")
    # Taken three times already and never finished: it kills the workers that take it.
    poison = SubmissionFactory(item=trained_item, text="udp", status="queued", attempts=3)
    outcome = tasks.score_submissions([str(fresh.pk), str(poison.pk)])
    assert outcome == {str(fresh.pk): "scored", str(poison.pk): "failed"}
    fresh.refresh_from_db()
    poison.refresh_from_db()
    assert fresh.attempts == 1
    assert poison.error == "not scored after 3 attempts by workers"
