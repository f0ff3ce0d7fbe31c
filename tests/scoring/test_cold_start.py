"""Starting an item without scored answers (issue 16): answers imported without a score, answers
waiting for a model, scoring them into training data, and the "score next" report."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from ml_core.data import DataFormatError, UnscoredRecord, read_responses_csv
from ml_core.embeddings import EmbeddingCache, frozen_embedder
from scoring_plugin import importing
from scoring_plugin.cold_start import (
    compute_report,
    describe,
    request_report,
    score_unscored_answer,
    score_waiting,
    training_answers,
    waiting_answers,
)
from scoring_plugin.models import (
    AuditLog,
    ColdStartReport,
    Item,
    ScoredAnswer,
    Submission,
    UnscoredAnswer,
)
from scoring_plugin.overrides import apply_override
from scoring_plugin.review import copy_reviewed_answers
from scoring_plugin.services import import_item_bank, training_examples
from tests.factories import ItemFactory, SubmissionFactory
from tests.scoring.conftest import WORDS, add_scored_answers
from workers import cold_start_tasks

ITEMS = (
    "item_id,language,prompt,reference_answer,max_score\nq1,en,Why does ice float?,Less dense,2\n"
)
UNSCORED = (
    "item_id,response_id,text,score,split\n"
    "q1,a1,It is less dense,2,train\n"
    "q1,a2,It is lighter,,\n"
    "q1,a3,No idea,,\n"
)


@pytest.mark.django_db
def test_answers_without_a_score_are_imported_as_needing_a_human_score() -> None:
    summary = import_item_bank(ITEMS.encode(), UNSCORED.encode())
    assert (summary.answers_created, summary.unscored_created) == (1, 2)
    assert "2 answer(s) without a score" in str(summary)
    assert sorted(UnscoredAnswer.objects.values_list("response_key", flat=True)) == ["a2", "a3"]
    assert list(ScoredAnswer.objects.values_list("response_key", flat=True)) == ["a1"]
    again = import_item_bank(ITEMS.encode(), UNSCORED.encode())
    assert (again.unscored_created, again.unscored_kept) == (0, 2)
    # a later file scores a2: it becomes training data and stops waiting
    import_item_bank(None, UNSCORED.replace("It is lighter,,", "It is lighter,1,").encode())
    assert ScoredAnswer.objects.get(response_key="a2").score == 1
    assert list(UnscoredAnswer.objects.values_list("response_key", flat=True)) == ["a3"]
    # and a file without its score never drops the human score again
    import_item_bank(None, UNSCORED.encode())
    assert ScoredAnswer.objects.filter(response_key="a2").exists()
    assert not UnscoredAnswer.objects.filter(response_key="a2").exists()


def test_the_plain_reader_still_refuses_an_empty_score_and_names_the_row() -> None:
    with pytest.raises(DataFormatError) as caught:
        read_responses_csv(UNSCORED.encode())
    assert (caught.value.row, caught.value.column) == (3, "score")
    waiting: list[UnscoredRecord] = []
    only_unscored = "item_id,response_id,text,score,split\nq1,a2,It is lighter,,\n"
    assert read_responses_csv(only_unscored.encode(), unscored=waiting) == []
    assert waiting == [UnscoredRecord("q1", "a2", "It is lighter")]


@pytest.mark.django_db
def test_preview_counts_answers_without_a_score_and_still_names_bad_scores() -> None:
    result = importing.preview(ITEMS.encode(), UNSCORED.encode())
    assert result.ok and len(result.responses) == 1
    assert result.unscored_per_item == {"q1": 2}
    bad = importing.preview(ITEMS.encode(), (UNSCORED + "q1,a4,Too good,7,\n").encode())
    assert [(e.row, e.column) for e in bad.errors] == [(5, "score")]
    assert not UnscoredAnswer.objects.exists()


@pytest.mark.django_db
def test_scoring_an_imported_answer_makes_it_training_data_with_who_scored_it() -> None:
    import_item_bank(ITEMS.encode(), UNSCORED.encode())
    waiting = UnscoredAnswer.objects.get(response_key="a2")
    with pytest.raises(ValidationError, match="0 to 2"):
        score_unscored_answer(waiting, 3, "admin:alice")
    assert UnscoredAnswer.objects.filter(pk=waiting.pk).exists()
    scored = score_unscored_answer(waiting, 1, "admin:alice")
    assert (scored.score, scored.source, scored.scored_by) == (1, "scored", "admin:alice")
    assert not UnscoredAnswer.objects.filter(pk=waiting.pk).exists()
    item = Item.objects.get(key="q1")
    assert ("It is lighter", 1) in [(e.text, e.label) for e in training_examples(item)]
    assert AuditLog.objects.filter(actor="admin:alice", item=item).count() == 1


@pytest.mark.django_db
def test_a_submission_waiting_for_a_model_becomes_training_data_once_scored() -> None:
    item = ItemFactory()
    submission = SubmissionFactory(
        item=item, status=Submission.Status.RECEIVED, waiting_for=Submission.WaitingFor.MODEL
    )
    assert [w.key for w in waiting_answers(item)] == [str(submission.pk)]
    apply_override(submission, 1, "", "lti:teacher", via=Submission.ReviewedVia.ADMIN)
    assert waiting_answers(item) == []
    assert training_answers(item) == [(submission.text, 1)]
    copy_reviewed_answers(item)
    assert training_answers(item) == [(submission.text, 1)]  # counted once after the copy
    assert [e.label for e in training_examples(item)] == [1]


def _unscored(item: Item, count: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    for i in range(count):
        UnscoredAnswer.objects.create(
            item=item, response_key=f"u{i}", text=" ".join(rng.sample(WORDS, 5))
        )


@pytest.mark.django_db
def test_report_suggests_waiting_answers_and_estimates_answers_needed(tiny_backbone: Path) -> None:
    item = ItemFactory(reference_answer="tcp and udp")
    bank_item = ItemFactory(reference_answer="tcp udp layer")
    add_scored_answers(bank_item, 30)
    add_scored_answers(item, 24)
    _unscored(item, 20)
    embed = EmbeddingCache(frozen_embedder(str(tiny_backbone), "mean", 1))
    result = compute_report(item, embed, batch_size=6, target_qwk=0.6)
    keys = [s["key"] for s in result["suggested"]]  # type: ignore[union-attr]
    assert len(keys) == len(set(keys)) == 6
    assert set(keys) <= {f"u{i}" for i in range(20)}
    assert (result["scored"], result["waiting"], result["bank_prior"]) == (24, 20, True)
    curve = result["curve"]
    assert isinstance(curve, dict) and curve["points"] and curve["target"] == 0.6
    text = "\n".join(describe(result))
    assert "score next (6)" in text and "target QWK 0.60" in text


@pytest.mark.django_db
def test_with_few_scored_answers_the_report_has_a_first_batch_but_no_curve(
    tiny_backbone: Path,
) -> None:
    item = ItemFactory(reference_answer="")
    _unscored(item, 15)
    embed = EmbeddingCache(frozen_embedder(str(tiny_backbone), "mean", 1))
    result = compute_report(item, embed, batch_size=4)
    assert len(result["suggested"]) == 4  # type: ignore[arg-type]
    assert result["curve"] is None and result["bank_prior"] is False
    assert "needs at least 10 scored answers" in "\n".join(describe(result))
    with pytest.raises(ValidationError, match="no answers"):
        compute_report(ItemFactory(), embed)


@pytest.mark.django_db
def test_the_command_queues_the_report_and_the_worker_task_stores_it(
    scoring_settings, django_capture_on_commit_callbacks, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    item = ItemFactory(key="fresh")
    add_scored_answers(item, 12)
    _unscored(item, 10)
    sent: list[int] = []
    monkeypatch.setattr("queueing.dispatch.send_cold_start", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("cold_start", "fresh", "--batch", "3")
    assert sent == [item.pk]
    assert ColdStartReport.objects.get(item=item).status == ColdStartReport.Status.PENDING
    monkeypatch.setattr(cold_start_tasks, "_CACHE", None)  # load the tiny backbone of settings
    # "ready", or "ready+training v1" when the curve already clears the baseline
    assert cold_start_tasks.compute_cold_start(item.pk).startswith(ColdStartReport.Status.READY)
    report = ColdStartReport.objects.get(item=item)
    assert len(report.result["suggested"]) == 3 and report.computed_at is not None
    call_command("cold_start", "fresh")
    assert "score next (3)" in capsys.readouterr().out
    with pytest.raises(CommandError, match="no item"):
        call_command("cold_start", "missing")
    with pytest.raises(ValidationError, match="batch size"):
        request_report(item, batch_size=0)
    monkeypatch.setattr(cold_start_tasks, "_CACHE", None)


@pytest.mark.django_db
def test_scoring_suggested_answers_of_both_kinds_through_one_call() -> None:
    import_item_bank(ITEMS.encode(), UNSCORED.encode())
    item = Item.objects.get(key="q1")
    submission = SubmissionFactory(item=item, waiting_for=Submission.WaitingFor.MODEL)
    score_waiting(item, "unscored", "a3", 0, "admin:bob")
    score_waiting(item, "submission", str(submission.pk), 2, "admin:bob")
    assert ScoredAnswer.objects.get(response_key="a3").scored_by == "admin:bob"
    assert Submission.objects.get(pk=submission.pk).reviewed_score == 2
    assert [w.key for w in waiting_answers(item)] == ["a2"]
    with pytest.raises(ValidationError, match="waits for a score"):
        score_waiting(item, "unscored", "a3", 1, "admin:bob")
    with pytest.raises(ValidationError, match="not an answer kind"):
        score_waiting(item, "other", "a2", 1, "admin:bob")


@pytest.mark.django_db
def test_admin_queues_the_report_shows_the_next_answers_and_scores_one_into_training_data(
    client, tiny_backbone: Path, django_capture_on_commit_callbacks, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from django.contrib.auth.models import User

    admin = User.objects.create_superuser("ada", "ada@example.org", "pw")
    client.force_login(admin)
    item = ItemFactory(key="fresh")
    add_scored_answers(item, 12)
    _unscored(item, 10)
    sent: list[int] = []
    monkeypatch.setattr("queueing.dispatch.send_cold_start", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/scoring_plugin/item/",
            {"action": "suggest_next", "_selected_action": [item.pk]},
            follow=True,
        )
    assert "Queued on the training queue" in response.content.decode() and sent == [item.pk]
    page = client.get(f"/admin/scoring_plugin/item/{item.pk}/change/").content.decode()
    assert 'id="cold-start"' in page and "Report: pending" in page
    embed = EmbeddingCache(frozen_embedder(str(tiny_backbone), "mean", 1))
    from scoring_plugin.cold_start import run_report

    run_report(item.pk, embed)
    page = client.get(f"/admin/scoring_plugin/item/{item.pk}/change/").content.decode()
    suggested = ColdStartReport.objects.get(item=item).result["suggested"][0]
    assert "12 scored, 10 waiting" in page and suggested["text"] in page
    url = f"/admin/scoring_plugin/item/{item.pk}/score-next/"
    client.post(url, {"kind": suggested["kind"], "key": suggested["key"], "score": "2"})
    scored = ScoredAnswer.objects.get(item=item, response_key=suggested["key"])
    assert (scored.score, scored.scored_by) == (2, "admin:ada")
    again = client.post(
        url, {"kind": suggested["kind"], "key": suggested["key"], "score": "1"}, follow=True
    )
    assert "waits for a score" in again.content.decode()  # scored once, not twice
    assert ScoredAnswer.objects.get(item=item, response_key=suggested["key"]).score == 2
    viewer = User.objects.create_user("vic", password="pw", is_staff=True)
    client.force_login(viewer)
    assert client.post(url, {"kind": "unscored", "key": "x", "score": "1"}).status_code == 403
