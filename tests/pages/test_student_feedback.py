"""Issue 15, item 1: the student's page says what the item is, shows the student's answer, one
state, the score with the feedback authored for it, that a model scored it, and lets the
student ask for a human review that lands in the instructor's queue."""

from __future__ import annotations

import json

import pytest

from lti.models import LtiSubmission
from scoring_plugin.models import Item, ScoredAnswer, Submission
from scoring_plugin.services import ImportError_, import_item_bank
from tests.pages.test_review_pages import answered

FEEDBACK = {"0": "Name a transport protocol.", "1": "One named; which is the other?", "2": "Both."}


@pytest.fixture
def item(db) -> Item:  # type: ignore[no-untyped-def]
    return Item.objects.create(
        key="demo-en-transport",
        title="Transport protocols",
        prompt="Name the two protocols of the transport layer.",
        max_score=2,
        review_threshold=0.6,
        feedback=FEEDBACK,
    )


def only_answer(client, token: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    (answer,) = client.get(f"/lti/s/{token}/status/").json()["submissions"]
    return answer


def test_the_page_shows_title_prompt_answer_state_score_and_authored_feedback(
    client, course
) -> None:
    answered(course, "s1", "TCP is one", score=1, confidence=0.9, name="Ada")
    token = course.launch("s1", name="Ada")
    html = client.get(f"/lti/s/{token}/").content.decode()
    assert '<h1 id="item-title">Transport protocols</h1>' in html
    assert "Name the two protocols of the transport layer." in html
    assert "demo-en-transport" not in html
    assert '<blockquote class="answer-text">TCP is one</blockquote>' in html
    assert '<span class="state">Scored</span>' in html
    assert "Score: 1 of 2." in html
    assert '<p class="feedback-text">One named; which is the other?</p>' in html
    assert "scored automatically by a computer model" in html
    assert '<form class="request-review"' in html
    assert 'role="status" aria-live="polite"' in html
    answer = only_answer(client, token)
    assert (answer["state"], answer["score"], answer["answer"]) == ("scored", 1.0, "TCP is one")
    assert answer["feedback_text"] == FEEDBACK["1"]


def test_a_low_confidence_answer_has_one_state_waiting_for_review(client, course) -> None:
    answered(course, "s1", "maybe tcp", score=1, confidence=0.3)
    token = course.launch("s1")
    answer = only_answer(client, token)
    assert (answer["state"], answer["state_label"]) == ("waiting_for_review", "Waiting for review")
    assert answer["score"] is None and answer["can_request_review"] is False
    html = client.get(f"/lti/s/{token}/").content.decode()
    assert '<span class="state">Waiting for review</span>' in html
    assert '<span class="state">Scored</span>' not in html


def test_requesting_a_review_puts_the_answer_in_the_instructors_queue(
    client, course, passback, django_capture_on_commit_callbacks
) -> None:
    submission = answered(course, "s1", "TCP is one", score=1, confidence=0.9, name="Ada")
    other = answered(course, "s2", "udp", score=1, confidence=0.9, name="Bo")
    token = course.launch("s1", name="Ada")
    url = only_answer(client, token)["request_review_url"]
    response = client.post(url, HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    body = response.json()
    assert body["review_requested"] is True and body["can_request_review"] is False
    assert "in your instructor's review queue" in body["review_note"]
    assert body["state"] == "waiting_for_review"
    html = client.get(f"/lti/s/{token}/").content.decode()
    assert 'class="request-review"' not in html and "review queue" in html

    teacher = course.launch("t1", instructor=True)
    queue = client.get(f"/lti/s/{teacher}/review/", {"review_requested": "1"}).content.decode()
    assert f'data-id="{submission.pk}"' in queue and f'data-id="{other.pk}"' not in queue
    assert "review requested by the student" in queue
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/lti/s/{teacher}/review/{submission.pk}/", {"score": "2"})
    submission.refresh_from_db()
    assert submission.review_requested is False and submission.reviewed_score == 2
    assert passback == [str(submission.pk)]
    queue = client.get(f"/lti/s/{teacher}/review/", {"review_requested": "1"}).content.decode()
    assert f'data-id="{submission.pk}"' not in queue
    answer = only_answer(client, token)
    assert (answer["state"], answer["score"]) == ("reviewed", 2.0)
    assert answer["feedback_text"] == FEEDBACK["2"]
    assert answer["scored_by"] == "Your instructor scored this answer."


def test_a_student_cannot_request_a_review_of_someone_elses_answer(client, course) -> None:
    theirs = answered(course, "s2", "udp", score=1, confidence=0.9)
    token = course.launch("s1")
    response = client.post(f"/lti/s/{token}/answers/{theirs.pk}/request-review/")
    assert response.status_code == 404
    assert Submission.objects.get(pk=theirs.pk).review_requested is False


def test_the_request_button_works_without_javascript(client, course) -> None:
    submission = answered(course, "s1", "tcp", score=1, confidence=0.9)
    token = course.launch("s1")
    response = client.post(f"/lti/s/{token}/answers/{submission.pk}/request-review/")
    assert response.status_code == 302 and response["Location"].endswith("#answers-heading")
    assert Submission.objects.get(pk=submission.pk).review_requested is True


def test_the_student_page_in_german(client, course) -> None:
    answered(course, "s1", "TCP", score=1, confidence=0.9)
    token = course.launch("s1", locale="de-DE")
    html = client.get(f"/lti/s/{token}/").content.decode()
    assert '<span class="state">Bewertet</span>' in html
    assert '<button type="submit">Prüfung durch eine Lehrkraft anfordern</button>' in html
    assert "automatisch von einem Computermodell bewertet" in html
    assert "Versuch 1" in html


ITEMS = (
    "item_id,language,prompt,reference_answer,max_score,title,feedback_0,feedback_1,feedback_2\n"
    "q1,en,Why does ice float?,Less dense,2,Floating ice,Say why.,Which property?,Right.\n"
    "q2,de,Warum rostet Eisen?,Wasser,1,,Nenne Wasser.,Richtig.,\n"
)


@pytest.mark.django_db
def test_the_items_csv_carries_title_and_feedback_per_score() -> None:
    import_item_bank(ITEMS.encode(), None)
    q1, q2 = Item.objects.get(key="q1"), Item.objects.get(key="q2")
    assert q1.title == "Floating ice" and q1.display_title == "Floating ice"
    assert q1.feedback == {"0": "Say why.", "1": "Which property?", "2": "Right."}
    assert q2.feedback == {"0": "Nenne Wasser.", "1": "Richtig."}
    assert q2.display_title == "Warum rostet Eisen?"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("items", "row", "column"),
    [
        # feedback for a score above the item's max_score
        (ITEMS.replace("Richtig.,", "Richtig.,Zu viel"), 3, "feedback_2"),
        (ITEMS.replace("feedback_2", "feedback_two"), 1, "feedback_two"),
    ],
)
def test_bad_feedback_columns_are_named_and_nothing_is_imported(
    items: str, row: int, column: str
) -> None:
    with pytest.raises(ImportError_) as caught:
        import_item_bank(items.encode(), None)
    assert (caught.value.error.row, caught.value.error.column) == (row, column)
    assert not Item.objects.exists() and not ScoredAnswer.objects.exists()


def test_feedback_is_edited_in_admin_and_checked(staff_client, item) -> None:
    url = f"/admin/scoring_plugin/item/{item.pk}/change/"
    form = {
        "key": item.key,
        "title": "Transport",
        "prompt": item.prompt,
        "reference_answer": "",
        "language": "en",
        "max_score": "2",
        "review_threshold": "0.6",
        "feedback": json.dumps({"0": "Nothing yet.", "2": "Both named."}),
        "model_versions-TOTAL_FORMS": "0",
        "model_versions-INITIAL_FORMS": "0",
        "criteria-TOTAL_FORMS": "0",
        "criteria-INITIAL_FORMS": "0",
    }
    page = staff_client.get(url).content.decode()
    assert 'name="feedback"' in page and 'name="title"' in page
    response = staff_client.post(url, {**form, "feedback": json.dumps({"5": "Too high"})})
    assert response.status_code == 200 and "is not a score from 0 to 2" in response.content.decode()
    response = staff_client.post(url, form)
    assert response.status_code == 302, response.content.decode()[-1500:]
    item.refresh_from_db()
    assert item.feedback == {"0": "Nothing yet.", "2": "Both named."} and item.title == "Transport"
    assert LtiSubmission.objects.count() == 0
