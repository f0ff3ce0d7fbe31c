"""The ``auto`` kind end to end (issue 13): trained by the training task and served by a real
worker beside a ``head`` item; its review threshold routes unsure answers to review; every
version page shows the agreement-versus-automation curve; admin asks before activating a
version that scored worse than the active one or the baseline."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from ml_core.confidence import CURVE_KEY, ECE_KEY
from scoring_plugin.artifact_store import version_folder
from scoring_plugin.models import Item, ModelVersion, Submission
from scoring_plugin.review import ReviewFilter
from scoring_plugin.services import create_model_version, start_training, training_examples
from tests.factories import (
    ItemFactory,
    ModelVersionFactory,
    ScoredAnswerFactory,
    SubmissionFactory,
    UserFactory,
)
from tests.scoring.conftest import WORDS, add_scored_answers, train_active_version
from tests.scoring.realworker import broker, tail, wait_for, worker_process
from workers import tasks


@pytest.fixture()
def admin_client(client):  # type: ignore[no-untyped-def]
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def _train_auto(item: Item) -> ModelVersion:
    version = create_model_version(item, ModelVersion.Kind.AUTO)
    assert (
        tasks.run_training(version, activate=True, examples=training_examples(item)) == "ready"
    ), ModelVersion.objects.get(pk=version.pk).error
    version.refresh_from_db()
    return version


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_an_auto_version_trained_by_the_task_is_served_by_a_worker_with_a_head_item(
    trained_item: Item, api_client, tiny_backbone: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    auto_item = ItemFactory(key="auto-item")
    add_scored_answers(auto_item, 45)
    log = tmp_path / "worker.log"
    url = "filesystem://"
    with broker(url), worker_process(url, tiny_backbone, log) as worker:
        version = start_training(auto_item, ModelVersion.Kind.AUTO)  # the training queue
        wait_for(
            lambda: (
                ModelVersion.objects.get(pk=version.pk).status
                in (ModelVersion.Status.READY, ModelVersion.Status.FAILED)
            ),
            timeout=300,
            what="the auto version trained",
            log=log,
        )
        version.refresh_from_db()
        assert version.status == "ready" and version.is_active, version.error
        assert version.review_threshold is not None

        texts = ["tcp udp", "the data", "udp", "tcp layer", "network no", "tcp udp and"]
        pairs = [(key, t) for t in texts for key in (trained_item.key, auto_item.key)]
        response = api_client.post(
            "/api/v1/submissions/batch/",
            {"answers": [{"item": key, "text": text} for key, text in pairs]},
            format="json",
        )
        assert response.status_code == 202, response.content
        ids = [s["id"] for s in response.json()["submissions"]]
        wait_for(
            lambda: (
                Submission.objects.filter(pk__in=ids, status__in=["scored", "failed"]).count()
                == len(ids)
            ),
            timeout=120,
            what="the answers scored",
            log=log,
        )
        assert worker.poll() is None, "the worker died"

    rows = {str(r.pk): r for r in Submission.objects.filter(pk__in=ids)}
    head_version = trained_item.active_version
    for submission_id, (key, _) in zip(ids, pairs, strict=True):
        row = rows[submission_id]
        assert row.status == "scored", row.error
        assert row.model_version_id == (version.pk if key == auto_item.key else head_version.pk)
        assert 0 <= row.score <= 2 and 0.0 < row.confidence <= 1.0
    # the worker scored answers of both items in one batch (one serving-set call)
    batches = re.findall(r"batch answers=(\d+) items=(\S+)", log.read_text(errors="replace"))
    assert any(
        set(items.split(",")) == {trained_item.key, auto_item.key} for _, items in batches
    ), tail(log)


@pytest.mark.django_db
def test_the_auto_versions_threshold_routes_low_confidence_answers_to_review(
    scoring_settings,
) -> None:  # type: ignore[no-untyped-def]
    from ml_core.auto import AutoModel

    item = ItemFactory(key="routed")
    # score = how many of 'tcp', 'udp' an answer names, with 3-6 other words: the answer's
    # length alone does not give the score away (auto reads the length too), so confidences spread
    rng = random.Random(5)
    fillers = [w for w in WORDS if w not in ("tcp", "udp")]
    for i in range(45):
        words = rng.sample(fillers, rng.randint(3, 6)) + ["tcp", "udp"][: i % 3]
        rng.shuffle(words)
        ScoredAnswerFactory(item=item, text=" ".join(words), score=i % 3)
    version = _train_auto(item)
    chosen = AutoModel.load(version_folder(version)).review_threshold
    assert version.review_threshold == pytest.approx(chosen)
    assert version.metrics[CURVE_KEY] and isinstance(version.metrics[ECE_KEY], float)

    answers = ["tcp udp", "udp", "the data", "tcp the layer", "no", "tcp udp network", "a"]
    subs = [SubmissionFactory(item=item, text=t, status="queued") for t in answers]
    tasks.score_submissions([str(s.pk) for s in subs])
    rows = list(Submission.objects.filter(pk__in=[s.pk for s in subs]))
    assert all(r.status == "scored" and r.model_version_id == version.pk for r in rows)
    # a threshold between the answers' confidences, so some go to review and some do not
    confidences = sorted(r.confidence for r in rows)
    assert confidences[0] < confidences[-1]
    middle = (confidences[0] + confidences[-1]) / 2
    ModelVersion.objects.filter(pk=version.pk).update(review_threshold=middle)
    # answers scored from now on record the version's new threshold
    subs = [SubmissionFactory(item=item, text=t, status="queued") for t in answers]
    tasks.score_submissions([str(s.pk) for s in subs])
    rows = list(Submission.objects.filter(pk__in=[s.pk for s in subs]).select_related("item"))
    assert all(r.review_threshold == pytest.approx(middle) for r in rows)
    expected = {str(r.pk) for r in rows if r.confidence < middle}
    assert expected and len(expected) < len(rows)
    assert {str(r.pk) for r in rows if r.needs_review} == expected
    flagged = ReviewFilter(needs_review=True).apply(
        Submission.objects.filter(pk__in=[s.pk for s in subs])
    )
    assert {str(pk) for pk in flagged.values_list("pk", flat=True)} == expected

    # the threshold in force when an answer is scored is recorded with it: an admin's own
    # threshold for the item wins; without either, the setting applies
    def score_again() -> list[Submission]:
        fresh = [SubmissionFactory(item=item, text=t, status="queued") for t in answers]
        tasks.score_submissions([str(s.pk) for s in fresh])
        return list(Submission.objects.filter(pk__in=[s.pk for s in fresh]).select_related("item"))

    Item.objects.filter(pk=item.pk).update(review_threshold=1.01)
    rows = score_again()
    flagged = ReviewFilter(needs_review=True).apply(
        Submission.objects.filter(pk__in=[r.pk for r in rows])
    )
    assert flagged.count() == len(rows) and all(r.needs_review for r in rows)
    Item.objects.filter(pk=item.pk).update(review_threshold=None)
    ModelVersion.objects.filter(pk=version.pk).update(review_threshold=None)
    scoring_settings.SCOREBRIDGE_REVIEW_THRESHOLD = 0.0
    rows = score_again()
    flagged = ReviewFilter(needs_review=True).apply(
        Submission.objects.filter(pk__in=[r.pk for r in rows])
    )
    assert flagged.count() == 0
    assert not any(r.needs_review for r in rows)


@pytest.mark.django_db
def test_every_version_page_shows_the_automation_curve_and_ece_or_says_not_available(
    scoring_settings, admin_client
) -> None:  # type: ignore[no-untyped-def]
    item = ItemFactory(key="curves")
    add_scored_answers(item, 45)
    head = train_active_version(item)
    auto = _train_auto(item)
    assert head.metrics[CURVE_KEY] and head.review_threshold is None
    distilled = ModelVersionFactory(
        item=item, number=3, kind=ModelVersion.Kind.DISTILLED, metrics={}
    )
    for version in (head, auto):
        page = admin_client.get(f"/admin/scoring_plugin/modelversion/{version.pk}/change/")
        html = page.content.decode()
        assert page.status_code == 200 and 'class="sb-chart sb-automation"' in html
        assert 'class="sb-chosen"' in html  # the review threshold is marked on the curve
        ece = re.search(r'class="sb-ece">([^<]+)<', html)
        assert ece and float(ece.group(1)) == pytest.approx(version.metrics[ECE_KEY], abs=5e-4)
    threshold = re.search(
        r'class="sb-threshold">([^<]+)<',
        admin_client.get(f"/admin/scoring_plugin/modelversion/{auto.pk}/change/").content.decode(),
    )
    assert threshold and float(threshold.group(1)) == pytest.approx(auto.review_threshold, abs=5e-3)
    html = admin_client.get(
        f"/admin/scoring_plugin/modelversion/{distilled.pk}/change/"
    ).content.decode()
    assert "sb-automation-missing" in html and "not available" in html


@pytest.mark.django_db
def test_admin_asks_before_activating_a_version_worse_than_the_active_one_or_the_baseline(
    admin_client,
) -> None:  # type: ignore[no-untyped-def]
    item = ItemFactory(key="guarded")
    active = ModelVersionFactory(item=item, number=1, metrics={"qwk": 0.80}, is_active=True)
    worse = ModelVersionFactory(item=item, number=2, metrics={"qwk": 0.70})
    below_baseline = ModelVersionFactory(
        item=item,
        number=3,
        kind=ModelVersion.Kind.AUTO,
        metrics={"qwk": 0.85, "baseline_qwk": 0.90},
    )
    better = ModelVersionFactory(item=item, number=4, metrics={"qwk": 0.90, "baseline_qwk": 0.8})

    url = f"/admin/scoring_plugin/modelversion/{worse.pk}/activate/"
    page = admin_client.post(url, {"next": f"/admin/scoring_plugin/item/{item.pk}/change/"})
    html = page.content.decode()
    assert page.status_code == 200 and 'id="activation-warning"' in html
    assert "0.700" in html and "0.800" in html
    assert item.active_version == active  # nothing changed yet
    done = admin_client.post(url, {"confirm": "1"})
    assert done.status_code == 302 and item.active_version == worse

    # below the baseline measured with it (even though better than the active one)
    page = admin_client.post(f"/admin/scoring_plugin/modelversion/{below_baseline.pk}/activate/")
    assert "baseline" in page.content.decode() and item.active_version == worse

    # the changelist action asks the same, then activates on confirmation
    data = {"action": "activate", "_selected_action": [below_baseline.pk]}
    page = admin_client.post("/admin/scoring_plugin/modelversion/", data)
    assert 'id="activation-warning"' in page.content.decode()
    assert item.active_version == worse
    admin_client.post("/admin/scoring_plugin/modelversion/", {**data, "confirm": "1"})
    assert item.active_version == below_baseline

    # a better version is activated at once
    done = admin_client.post(f"/admin/scoring_plugin/modelversion/{better.pk}/activate/")
    assert done.status_code == 302 and item.active_version == better


@pytest.mark.django_db
def test_an_auto_version_teaches_a_distilled_student(scoring_settings) -> None:  # type: ignore[no-untyped-def]
    from scoring_plugin.services import start_distillation

    item = ItemFactory(key="taught")
    add_scored_answers(item, 45)
    teacher = _train_auto(item)
    student = start_distillation(teacher)
    ModelVersion.objects.filter(pk=student.pk).update(status=ModelVersion.Status.TRAINING)
    student.refresh_from_db()
    assert tasks.run_distillation(student, activate=False) == "ready", ModelVersion.objects.get(
        pk=student.pk
    ).error
    student.refresh_from_db()
    assert student.status == "ready" and (version_folder(student) / "student.onnx").is_file()
    assert tasks.engine_host.engine_if_loaded() is None or not any(
        key.startswith("teacher:") for key in tasks.engine_host.engine().loaded()
    )
