"""Issue 15, item 2: an item's answers in answer groups; a group scored in one action, each
student's grade reaching the gradebook; "scored like these" for any answer."""

from __future__ import annotations

import re

import pytest

from lti.models import LtiSubmission
from scoring_plugin.answer_groups import Member, answer_vectors, build_groups, group_indices
from scoring_plugin.models import AuditLog, ScoredAnswer, Submission
from tests.lti.lti_platform import INSTRUCTOR
from tests.lti.lti_scoring import finish
from tests.lti.test_lti_flow import submit, token_of

SIMILAR = [
    f"TCP and UDP are the {word} protocols{end}"
    for word in ("transport", "two transport", "transport layer", "main transport", "tl")
    for end in ("", ".", "!", " of the transport layer")
]
DIFFERENT = [
    "Plants need light and water for photosynthesis.",
    "I do not know.",
    "HTTP runs on top of the network.",
    "Routers forward packets between networks by their IP address.",
    "Ethernet frames carry a checksum at the end.",
]


def test_near_copies_share_a_group_and_different_answers_do_not() -> None:
    groups = group_indices(answer_vectors(SIMILAR + DIFFERENT))
    assert sorted(groups[0]) == list(range(len(SIMILAR)))
    assert all(len(g) == 1 for g in groups[1:]) and len(groups) == 1 + len(DIFFERENT)


def test_groups_come_least_confident_first_with_size_and_spread() -> None:
    members = [
        Member(f"s{i}", text, score=1 if i % 2 else 2, confidence=0.9 - i / 100, final_score=None)
        for i, text in enumerate(SIMILAR[:6])
    ] + [Member("x", DIFFERENT[1], score=0, confidence=0.2, final_score=0)]
    for m in members:
        m.final_score = m.score
    first, second = build_groups(members)
    assert [m.key for m in first.members] == ["x"]  # the least confident group comes first
    assert second.size == 6 and second.spread == "1–2" and second.scores == {1: 3, 2: 3}
    assert [m.key for m in second.members][:2] == ["s5", "s4"]  # least confident member first


@pytest.mark.django_db
def test_an_instructor_scores_a_group_of_20_and_the_20_grades_reach_the_gradebook(
    platform, item, make_browser, captured, django_capture_on_commit_callbacks
) -> None:
    ids: dict[str, str] = {}
    for number, text in enumerate(SIMILAR + DIFFERENT):
        student = make_browser()
        sub = f"student-{number}"
        ids[sub] = submit(student, student.open(platform, sub=sub), answer=text).json()["id"]
        finish(ids[sub], score=1, confidence=0.3 + number / 100)
    assert len(captured.run_all()) == len(ids)  # PendingManual for every answer
    teacher = make_browser()
    token = token_of(teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR]))
    page = teacher.get(f"/lti/s/{token}/review/groups/", data={"needs_review": "1"})
    html = page.content.decode()
    sizes = [
        int(s) for s in re.findall(r'class="answer-group" id="group-\d+" data-size="(\d+)"', html)
    ]
    assert sorted(sizes, reverse=True) == [20, 1, 1, 1, 1, 1]
    assert "Group 1:" in html and "TCP and UDP are the transport protocols" in html
    big = html.split('data-size="20"')[1].split("</form>")[0]
    chosen = re.findall(r'name="submission_ids" value="([0-9a-f-]+)"', big)
    assert sorted(chosen) == sorted(ids[f"student-{n}"] for n in range(20))

    with django_capture_on_commit_callbacks(execute=True):
        response = teacher.post(
            f"/lti/s/{token}/review/groups/",
            {"submission_ids": chosen, "score": "3", "comment": "Both named.", "item_id": item.pk},
        )
    assert response.status_code == 302 and "scored=20" in response["Location"]
    assert captured.run_all() == ["posted"] * 20
    for n in range(20):
        last = platform.scores_for(f"student-{n}")[-1]
        assert (last["scoreGiven"], last["gradingProgress"]) == (3.0, "FullyGraded")
    for n in range(20, len(ids)):
        assert platform.scores_for(f"student-{n}")[-1]["gradingProgress"] == "PendingManual"
    entries = AuditLog.objects.filter(action="override")
    assert entries.count() == 20 and {e.details["via"] for e in entries} == {"group"}
    assert {str(e.submission_id) for e in entries} == set(chosen)
    # The scored group is no longer under "needs review".
    after = teacher.get(
        f"/lti/s/{token}/review/groups/", data={"needs_review": "1"}
    ).content.decode()
    assert 'data-size="20"' not in after
    assert all(link.final_score == 3 for link in LtiSubmission.objects.filter(pk__in=chosen))


@pytest.mark.django_db
def test_a_group_score_outside_the_range_changes_nothing(
    platform, item, make_browser, captured
) -> None:
    student = make_browser()
    submission_id = submit(student, student.open(platform), answer=SIMILAR[0]).json()["id"]
    finish(submission_id, score=1, confidence=0.3)
    captured.run_all()
    teacher = make_browser()
    token = token_of(teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR]))
    response = teacher.post(
        f"/lti/s/{token}/review/groups/", {"submission_ids": [submission_id], "score": "9"}
    )
    assert response.status_code == 400
    assert Submission.objects.get(pk=submission_id).reviewed_score is None
    assert captured.calls == []


@pytest.mark.django_db
def test_scored_like_these_shows_the_three_most_similar_human_scored_answers(
    platform, item, make_browser, captured
) -> None:
    for key, text, score in [
        ("h1", "TCP and UDP are the transport protocols", 3),
        ("h2", "TCP is a transport protocol", 2),
        ("h3", "UDP only", 1),
        ("h4", "Plants need light", 0),
        ("h5", "I do not know", 0),
    ]:
        ScoredAnswer.objects.create(item=item, response_key=key, text=text, score=score)
    student = make_browser()
    submission_id = submit(
        student, student.open(platform), answer="TCP and UDP are transport protocols."
    ).json()["id"]
    finish(submission_id, score=3, confidence=0.9)
    teacher = make_browser()
    token = token_of(teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR]))
    html = teacher.get(f"/lti/s/{token}/review/{submission_id}/").content.decode()
    section = html.split('id="scored-like-these"')[1].split("</section>")[0]
    rows = re.findall(r'<tr class="similar"><td>(.*?)</td><td>(\d+)</td>', section)
    assert rows[0] == ("TCP and UDP are the transport protocols", "3")
    assert len(rows) == 3
    assert "Plants need light" not in section


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_group_of_20_reaches_the_gradebook_through_a_real_lms_worker(
    platform, item, make_browser, tiny_backbone, tmp_path
) -> None:
    """The loop with real parts: students answer through launches, one asks for a human review,
    the instructor scores the group of 20 in one action, a ``celery worker`` process sends the
    20 grades to the test platform over HTTP, and the student reads the reviewed score with the
    feedback authored for it."""
    from tests.scoring.realworker import broker, wait_for, worker_process

    item.feedback = {"3": "Both protocols named."}
    item.save()
    log = tmp_path / "worker.log"
    url = "filesystem://"
    with broker(url):
        students: dict[str, tuple[object, str, str]] = {}
        for number, text in enumerate(SIMILAR + DIFFERENT):
            student = make_browser()
            sub = f"student-{number}"
            page = student.open(platform, sub=sub)
            answer_id = submit(student, page, answer=text).json()["id"]
            students[sub] = (student, page, answer_id)
            finish(answer_id, score=1, confidence=0.3 + number / 100)
        first, first_page, first_id = students["student-0"]
        status = first.get(f"/lti/s/{token_of(first_page)}/status/").json()  # type: ignore[attr-defined]
        assert status["submissions"][0]["state"] == "waiting_for_review"
        with worker_process(url, tiny_backbone, log):
            wait_for(
                lambda: all(platform.scores_for(sub) for sub in students), 180, "25 posts", log
            )
            teacher = make_browser()
            token = token_of(teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR]))
            html = teacher.get(f"/lti/s/{token}/review/groups/").content.decode()
            big = html.split('data-size="20"')[1].split("</form>")[0]
            chosen = re.findall(r'name="submission_ids" value="([0-9a-f-]+)"', big)
            response = teacher.post(
                f"/lti/s/{token}/review/groups/",
                {"submission_ids": chosen, "score": "3", "item_id": item.pk},
            )
            assert response.status_code == 302
            wait_for(
                lambda: all(
                    platform.scores_for(f"student-{n}")[-1].get("scoreGiven") == 3.0
                    for n in range(20)
                ),
                180,
                "the 20 group grades in the gradebook",
                log,
            )
    for n in range(20, len(students)):
        assert platform.scores_for(f"student-{n}")[-1]["gradingProgress"] == "PendingManual"
    assert AuditLog.objects.filter(action="override", details__via="group").count() == 20
    status = first.get(f"/lti/s/{token_of(first_page)}/status/").json()  # type: ignore[attr-defined]
    (answer,) = status["submissions"]
    assert (answer["state"], answer["score"]) == ("reviewed", 3.0)
    assert answer["feedback_text"] == "Both protocols named."
    assert LtiSubmission.objects.get(pk=first_id).passback_status == "posted"
