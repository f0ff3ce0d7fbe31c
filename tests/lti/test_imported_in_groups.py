"""Issue 16: answers imported without a score appear on the instructor's answer groups page,
grouped by their text, and scoring a group there makes them training data with who scored
them (per criterion for an analytic item); they have no student, so no gradebook."""

from __future__ import annotations

import re

import pytest

from scoring_plugin.models import AuditLog, Criterion, ScoredAnswer, UnscoredAnswer
from scoring_plugin.services import training_data
from tests.lti.lti_platform import INSTRUCTOR
from tests.lti.lti_scoring import finish
from tests.lti.test_lti_flow import submit, token_of

pytestmark = pytest.mark.django_db

ALIKE = [
    "TCP and UDP are the transport protocols of the internet.",
    "TCP and UDP are the transport protocols of the internet!",
    "The transport protocols of the internet are TCP and UDP.",
]
APART = "A router forwards packets between networks."


@pytest.fixture
def groups_page(platform, item, make_browser, captured):  # type: ignore[no-untyped-def]
    """The teacher's browser and groups page of item-1, which has one student answer in the
    course and four imported answers without a score (three alike)."""
    student = make_browser()
    finish(submit(student, student.open(platform)).json()["id"], score=1, confidence=0.3)
    captured.run_all()
    for number, text in enumerate([*ALIKE, APART]):
        UnscoredAnswer.objects.create(item=item, response_key=f"r{number}", text=text)
    teacher = make_browser()
    token = token_of(teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR]))
    return teacher, f"/lti/s/{token}/review/groups/"


def imported_groups(html: str) -> list[list[str]]:
    """The response keys of each imported group shown, in page order."""
    sections = html.split('class="answer-group imported-group"')[1:]
    return [re.findall(r'data-imported="([^"]+)"', s.split("</section>")[0]) for s in sections]


def test_imported_answers_are_grouped_and_a_group_is_scored_into_training_data(
    groups_page, item, captured
) -> None:
    teacher, page = groups_page
    html = teacher.get(page, data={"item_id": item.pk}).content.decode()
    assert "Imported answers without a score" in html
    assert [sorted(keys) for keys in imported_groups(html)] == [["r0", "r1", "r2"], ["r3"]]
    group = html.split('class="answer-group imported-group"')[1].split("</form>")[0]
    ids = re.findall(r'name="unscored_ids" value="(\d+)"', group)
    left_out = str(UnscoredAnswer.objects.get(response_key="r2").pk)

    response = teacher.post(
        page,
        {
            "unscored_ids": ids,
            "picked": [left_out],
            "score": "2",
            "item_id": item.pk,
            "action": "score_imported",
        },
    )
    assert response.status_code == 302 and "imported=2" in response["Location"]
    scored = ScoredAnswer.objects.filter(item=item).order_by("response_key")
    assert [(a.response_key, a.score, a.source, a.scored_by) for a in scored] == [
        ("r0", 2, "scored", "lti:Name of teacher-1"),
        ("r1", 2, "scored", "lti:Name of teacher-1"),
    ]
    assert sorted(UnscoredAnswer.objects.values_list("response_key", flat=True)) == ["r2", "r3"]
    entries = AuditLog.objects.filter(action="override", item=item)
    assert {e.details["via"] for e in entries} == {"lti group"} and entries.count() == 2
    assert AuditLog.objects.get(action="group").details["left_out_imported"] == ["r2"]
    assert captured.calls == []  # no student, no gradebook
    after = teacher.get(response["Location"]).content.decode()
    assert "Scored 2 imported answer(s)" in after
    assert sorted(imported_groups(after)) == [["r2"], ["r3"]]


def test_an_imported_group_score_outside_the_range_changes_nothing(
    groups_page, item, captured
) -> None:
    teacher, page = groups_page
    ids = [str(pk) for pk in UnscoredAnswer.objects.values_list("pk", flat=True)]
    for score, status in (("4", 400), ("x", 400)):
        response = teacher.post(
            page,
            {"unscored_ids": ids, "score": score, "item_id": item.pk, "action": "score_imported"},
        )
        assert response.status_code == status
        assert "Enter a whole number from 0 to 3." in response.content.decode()
    assert UnscoredAnswer.objects.count() == 4 and not ScoredAnswer.objects.exists()
    assert not AuditLog.objects.filter(action="override").exists()


def test_an_analytic_items_imported_group_is_scored_per_criterion_and_trains_it(
    groups_page, item
) -> None:
    Criterion.objects.create(item=item, name="content", max_score=2, order=0)
    Criterion.objects.create(item=item, name="language", max_score=1, order=1)
    teacher, page = groups_page
    html = teacher.get(page, data={"item_id": item.pk}).content.decode()
    group = html.split('class="answer-group imported-group"')[1].split("</form>")[0]
    assert 'name="criterion:content"' in group and 'name="score"' not in group
    ids = re.findall(r'name="unscored_ids" value="(\d+)"', group)
    form = {"unscored_ids": ids, "item_id": item.pk, "action": "score_imported"}

    refused = teacher.post(page, {**form, "criterion:content": "3", "criterion:language": "1"})
    assert refused.status_code == 400
    assert "content: enter a whole number from 0 to 2, not 3." in refused.content.decode()
    assert not ScoredAnswer.objects.exists()

    response = teacher.post(page, {**form, "criterion:content": "2", "criterion:language": "1"})
    assert response.status_code == 302
    scored = ScoredAnswer.objects.filter(item=item)
    assert scored.count() == 3
    assert {(a.score, tuple(sorted(a.criterion_scores.items()))) for a in scored} == {
        (3, (("content", 2), ("language", 1)))
    }
    examples, _ = training_data(item)
    assert sorted(e.text for e in examples) == sorted(ALIKE)
    assert {e.criteria_labels for e in examples} == {(2, 1)}


def test_filters_that_imported_answers_cannot_match_leave_them_out(groups_page, item) -> None:
    teacher, page = groups_page
    for query in ({"reviewed": "1"}, {"review_requested": "1"}, {"low_confidence": "0.5"}):
        html = teacher.get(page, data={"item_id": item.pk, **query}).content.decode()
        assert "Imported answers without a score" not in html, query
    html = teacher.get(page, data={"item_id": item.pk, "needs_review": "1"}).content.decode()
    assert "Imported answers without a score" in html
