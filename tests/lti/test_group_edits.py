"""Issue 16, item 2: in the answer groups an instructor leaves outliers out of a group's score,
moves answers to a group of their own, and splits a group by a tighter cut; all without
JavaScript (plain forms, state in the address) and audited."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest

from scoring_plugin.answer_groups import Member, build_groups, group_anchor
from scoring_plugin.models import AuditLog, Submission
from tests.lti.lti_platform import INSTRUCTOR
from tests.lti.lti_scoring import finish
from tests.lti.test_answer_groups import DIFFERENT, SIMILAR
from tests.lti.test_lti_flow import submit, token_of


def _members(texts: list[str]) -> list[Member]:
    return [Member(f"k{i:02d}", t, score=1, confidence=0.5) for i, t in enumerate(texts)]


def test_a_split_group_becomes_two_smaller_groups_and_moved_answers_their_own() -> None:
    members = _members(SIMILAR)
    (whole,) = build_groups(members)
    anchor = group_anchor([m.key for m in whole.members])
    halves = build_groups(members, split=[anchor])
    assert len(halves) == 2 and sorted(g.size for g in halves) != [0, 20]
    assert sorted(m.key for g in halves for m in g.members) == [m.key for m in members]
    moved = build_groups(members, apart=[["k03", "k07", "missing"]])
    assert sorted(g.size for g in moved) == [2, 18]
    assert {m.key for g in moved if g.size == 2 for m in g.members} == {"k03", "k07"}
    # splitting further works down to single answers, and identical answers stay together
    assert len(build_groups(_members(["same"] * 3), split=["k00:3"])) == 1


@pytest.mark.django_db
def test_an_instructor_leaves_outliers_out_moves_them_and_splits_a_group(
    platform, item, make_browser, captured, django_capture_on_commit_callbacks
) -> None:
    ids: list[str] = []
    for number, text in enumerate(SIMILAR + DIFFERENT):
        student = make_browser()
        answer = submit(student, student.open(platform, sub=f"student-{number}"), answer=text)
        ids.append(answer.json()["id"])
        finish(ids[-1], score=1, confidence=0.3)
    captured.run_all()
    teacher = make_browser()
    token = token_of(teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR]))
    url = f"/lti/s/{token}/review/groups/"
    html = teacher.get(url, data={"needs_review": "1"}).content.decode()
    big = html.split('data-size="20"')[1].split("</form>")[0]
    members = re.findall(r'name="submission_ids" value="([0-9a-f-]+)"', big)
    assert len(members) == 20
    assert all(f'<label for="pick-{pk}"' in big for pk in members)  # each checkbox labelled
    # what a browser posts: the field's value unescaped
    query = unescape(re.search(r'name="query" value="([^"]*)"', big).group(1))  # type: ignore[union-attr]
    # two fixed answers (not the first two on the page, which are ordered by random ids): the
    # other 18 then still form one group (without SIMILAR[16] and [19] they would fall in two)
    outliers = [ids[0], ids[1]]
    assert set(outliers) <= set(members)

    # score the group, two outliers left out
    with django_capture_on_commit_callbacks(execute=True):
        response = teacher.post(
            url,
            {"submission_ids": members, "picked": outliers, "score": "3", "action": "score",
             "item_id": item.pk, "query": query},
        )  # fmt: skip
    assert response.status_code == 302 and "scored=18" in response["Location"]
    assert captured.run_all() == ["posted"] * 18
    reviewed = dict(Submission.objects.filter(pk__in=members).values_list("pk", "reviewed_score"))
    assert sorted(str(pk) for pk, score in reviewed.items() if score is None) == sorted(outliers)
    (left_out,) = AuditLog.objects.filter(action="group")
    assert left_out.details == {"change": "left out", "left_out": sorted(outliers), "scored": 18}
    assert left_out.actor == "lti:Name of teacher-1"

    # move the two outliers to a group of their own: the address keeps it, audited
    response = teacher.post(
        url,
        {"submission_ids": members, "picked": outliers, "action": "apart",
         "item_id": item.pk, "query": query},
    )  # fmt: skip
    assert response.status_code == 302
    apart = parse_qs(urlsplit(response["Location"]).query)["apart"]
    assert apart == [",".join(sorted(outliers))]
    html = teacher.get(response["Location"]).content.decode()
    assert 'id="groups-edited"' in html
    sizes = [
        int(s) for s in re.findall(r'class="answer-group" id="group-\d+" data-size="(\d+)"', html)
    ]
    assert sorted(sizes, reverse=True)[:2] == [2, 1] and 20 not in sizes  # the 18 are reviewed
    pair = html.split('data-size="2"')[1].split("</form>")[0]
    assert sorted(re.findall(r'name="submission_ids" value="([0-9a-f-]+)"', pair)) == sorted(
        outliers
    )

    # split the group of 20 (reviewed ones shown): two smaller groups, audited
    html = teacher.get(url, data={"reviewed": "1"}).content.decode()
    big = html.split('data-size="18"')[1].split("</form>")[0]
    eighteen = re.findall(r'name="submission_ids" value="([0-9a-f-]+)"', big)
    response = teacher.post(
        url,
        {"submission_ids": eighteen, "action": "split", "item_id": item.pk, "query": "reviewed=1"},
    )
    assert response.status_code == 302
    (anchor,) = parse_qs(urlsplit(response["Location"]).query)["split"]
    assert anchor == f"{min(eighteen)}:18"
    html = teacher.get(response["Location"]).content.decode()
    sizes = [int(s) for s in re.findall(r'data-size="(\d+)"', html)]
    assert 18 not in sizes and sum(sizes) == 18 and len(sizes) >= 2
    changes = [e.details["change"] for e in AuditLog.objects.filter(action="group")]
    assert sorted(changes) == ["left out", "moved to a new group", "split"]


@pytest.mark.django_db
def test_moving_without_a_selection_says_so_and_changes_nothing(
    platform, item, make_browser, captured
) -> None:
    student = make_browser()
    submission_id = submit(student, student.open(platform), answer=SIMILAR[0]).json()["id"]
    finish(submission_id, score=1, confidence=0.3)
    teacher = make_browser()
    token = token_of(teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR]))
    response = teacher.post(
        f"/lti/s/{token}/review/groups/",
        {"submission_ids": [submission_id], "action": "apart", "item_id": item.pk},
    )
    assert response.status_code == 400
    assert "Select the answers to move" in response.content.decode()
    assert not AuditLog.objects.filter(action="group").exists()
