"""Retention: celery beat sends the purge on its schedule, a real worker runs it, and it removes
what is older than the settings say while aggregates (model versions, metrics, imported data)
survive."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from lti_tool.models import LtiContext, LtiDeployment, LtiMembership, LtiRegistration, LtiUser

from scoring_plugin.models import AuditLog, ModelVersion, ScoredAnswer, Submission
from scoring_plugin.retention import purge
from tests.factories import (
    ItemFactory,
    ModelVersionFactory,
    ScoredAnswerFactory,
    SubmissionFactory,
)
from tests.scoring.realworker import beat_process, broker, tail, wait_for, worker_process

RETENTION_ENV = {
    "SCOREBRIDGE_RETAIN_ANSWERS_DAYS": "30",
    "SCOREBRIDGE_RETAIN_LTI_IDENTITIES_DAYS": "30",
    "SCOREBRIDGE_RETAIN_LOGS_DAYS": "7",
    "SCOREBRIDGE_RETAIN_AUDIT_DETAILS_DAYS": "60",
}


def aged(days: int):  # type: ignore[no-untyped-def]
    return timezone.now() - timedelta(days=days)


def make_history(log_dir: Path) -> dict[str, object]:
    """Old and recent answers, reviews, identities, audit comments and log files."""
    item = ItemFactory(key="retained")
    version = ModelVersionFactory(item=item, metrics={"qwk": 0.71, "n_test": 40}, is_active=True)
    imported = ScoredAnswerFactory(item=item, text="imported answer from the school's data")
    old = SubmissionFactory(item=item, text="an old answer", status="scored", score=1)
    new = SubmissionFactory(item=item, text="a new answer", status="scored", score=2)
    Submission.objects.filter(pk=old.pk).update(created_at=aged(45), model_version=version)
    for s in (old, new):
        ScoredAnswerFactory(item=item, response_key=f"review:{s.pk}", text=s.text, source="review")
    registration = LtiRegistration.objects.create(
        name="lms",
        issuer="https://lms.example",
        client_id="c",
        auth_url="https://lms.example/auth",
        token_url="https://lms.example/token",
        keyset_url="https://lms.example/jwks",
    )
    deployment = LtiDeployment.objects.create(registration=registration, deployment_id="d")
    context = LtiContext.objects.create(deployment=deployment, id_on_platform="course")
    gone = LtiUser.objects.create(registration=registration, sub="left-long-ago", email="a@b.c")
    stays = LtiUser.objects.create(registration=registration, sub="seen-today")
    LtiMembership.objects.create(user=gone, context=context, is_learner=True)
    LtiUser.objects.filter(pk=gone.pk).update(datetime_modified=aged(40))
    old_entry = AuditLog.objects.create(
        action="override", actor="admin:x", details={"score": 2, "comment": "old words"}
    )
    AuditLog.objects.filter(pk=old_entry.pk).update(created_at=aged(90))
    new_entry = AuditLog.objects.create(
        action="override", actor="admin:x", details={"score": 1, "comment": "new words"}
    )
    log_dir.mkdir(parents=True, exist_ok=True)
    old_log, new_log = log_dir / "web.log.1", log_dir / "web.log"
    for path in (old_log, new_log):
        path.write_text("GET /lti/s/... 200\n")
    stamp = time.time() - 10 * 86400
    os.utime(old_log, (stamp, stamp))
    return locals()


def assert_purged(h: dict[str, object]) -> None:
    assert list(Submission.objects.values_list("text", flat=True)) == ["a new answer"]
    assert set(ScoredAnswer.objects.values_list("text", flat=True)) == {
        "imported answer from the school's data",
        "a new answer",
    }
    assert list(LtiUser.objects.values_list("sub", flat=True)) == ["seen-today"]
    assert not LtiMembership.objects.exists()
    old_entry = AuditLog.objects.get(pk=h["old_entry"].pk)  # type: ignore[attr-defined]
    assert old_entry.details == {"score": 2, "comment_purged": True}
    new_entry = AuditLog.objects.get(pk=h["new_entry"].pk)  # type: ignore[attr-defined]
    assert new_entry.details["comment"] == "new words"
    assert not h["old_log"].exists() and h["new_log"].exists()  # type: ignore[attr-defined]
    # Aggregates survive: the version, its metrics, and the item's imported data.
    version = ModelVersion.objects.get(pk=h["version"].pk)  # type: ignore[attr-defined]
    assert version.metrics == {"qwk": 0.71, "n_test": 40} and version.is_active


EXPECTED = {
    "answers": 1,
    "lti_answer_links": 0,
    "training_copies": 1,
    "lti_identities": 1,
    "lti_memberships": 1,
    "log_files": 1,
    "audit_details_scrubbed": 1,
}


@pytest.mark.django_db
def test_purge_removes_what_is_older_than_the_settings_and_reports_it(
    settings, tmp_path: Path
) -> None:
    settings.RETAIN_ANSWERS_DAYS = 30
    settings.RETAIN_LTI_IDENTITIES_DAYS = 30
    settings.RETAIN_LOGS_DAYS = 7
    settings.RETAIN_AUDIT_DETAILS_DAYS = 60
    settings.LOG_DIR = tmp_path / "log"
    history = make_history(settings.LOG_DIR)
    report = purge()
    removed = report["removed"]
    assert {k: removed[k] for k in EXPECTED} == EXPECTED  # type: ignore[index]
    assert_purged(history)
    entry = AuditLog.objects.get(action=AuditLog.Action.PURGE)
    assert entry.details["removed"]["answers"] == 1
    # Idempotent: a second run removes nothing more.
    again = purge()["removed"]
    assert {k: again[k] for k in EXPECTED} == dict.fromkeys(EXPECTED, 0)  # type: ignore[index]


@pytest.mark.django_db
def test_zero_days_keeps_everything(settings, tmp_path: Path) -> None:
    for name in ("ANSWERS", "LTI_IDENTITIES", "LOGS", "AUDIT_DETAILS"):
        setattr(settings, f"RETAIN_{name}_DAYS", None)
    settings.LOG_DIR = tmp_path / "log"
    make_history(settings.LOG_DIR)
    purge()
    assert Submission.objects.count() == 2 and LtiUser.objects.count() == 2
    assert AuditLog.objects.filter(details__has_key="comment").count() == 2
    assert len(list((tmp_path / "log").iterdir())) == 2


def test_retention_settings_parse_days_and_fail_loudly(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from scorebridge.config import read

    name = "SCOREBRIDGE_RETAIN_LOGS_DAYS"  # registered with 90 days
    monkeypatch.setenv(name, "")
    assert read(name) is None
    monkeypatch.setenv(name, "0")
    assert read(name) is None
    monkeypatch.setenv(name, "14")
    assert read(name) == 14
    monkeypatch.delenv(name)
    assert read(name) == 90
    for bad in ("-1", "two weeks"):
        monkeypatch.setenv(name, bad)
        with pytest.raises(ImproperlyConfigured, match=name):
            read(name)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_beat_schedules_the_purge_and_a_real_worker_runs_it(
    tiny_backbone: Path, tmp_path: Path
) -> None:
    history = make_history(tmp_path / "log")
    url = "filesystem://"
    env = {
        **RETENTION_ENV,
        "SCOREBRIDGE_LOG_DIR": str(tmp_path / "log"),
        "SCOREBRIDGE_PURGE_INTERVAL_SECONDS": "2",
        "SCOREBRIDGE_SWEEP_INTERVAL_SECONDS": "3600",
    }
    worker_log, beat_log = tmp_path / "worker.log", tmp_path / "beat.log"
    with (
        broker(url),
        worker_process(url, tiny_backbone, worker_log, env=env),
        beat_process(url, tmp_path / "beat-schedule", beat_log, env=env),
    ):
        wait_for(
            lambda: AuditLog.objects.filter(action=AuditLog.Action.PURGE).count() >= 2,
            180,
            "two purges sent by beat and run by the worker",
            worker_log,
        )
    runs = list(AuditLog.objects.filter(action=AuditLog.Action.PURGE).order_by("pk"))
    first, second = runs[0].details["removed"], runs[1].details["removed"]
    assert {k: first[k] for k in EXPECTED} == EXPECTED, tail(worker_log)
    assert {k: second[k] for k in EXPECTED} == dict.fromkeys(EXPECTED, 0)
    assert runs[0].actor == "system:retention"
    assert_purged(history)
    # application lines go to SCOREBRIDGE_LOG_DIR's scorebridge.log, Celery's own to its log
    app_log = (tmp_path / "log" / "scorebridge.log").read_text()
    assert "purge-expired-data" in beat_log.read_text() + app_log
    assert "retention purge removed" in worker_log.read_text() + app_log
