"""The instructor's pages in German for a German launch (the launch's locale claim), English
otherwise: the answer list, one answer with its override form, the answer groups, and the
override's validation messages."""

from __future__ import annotations

from scoring_plugin.models import Criterion
from tests.pages.test_review_pages import answered


def test_the_review_pages_are_german_for_a_german_launch(client, course) -> None:
    submission = answered(course, "s1", "tcp and udp", score=1, confidence=0.4, name="Ada")
    token = course.launch("t1", instructor=True, locale="de-DE")

    listing = client.get(f"/lti/s/{token}/review/").content.decode()
    assert '<html lang="de">' in listing
    assert "Antworten in diesem Kurs" in listing and "In Antwortgruppen prüfen" in listing
    assert "Answers in this course" not in listing and "Needs review" not in listing

    one = client.get(f"/lti/s/{token}/review/{submission.pk}/").content.decode()
    assert "Alle Antworten" in one and "Speichern und an das Notenbuch senden" in one
    assert "Automatische Bewertung:" in one and "1 von 2" in one
    assert "Status: bewertet." in one and ">Prüfung nötig</span>" in one  # state words too
    assert "needs review" not in one and "Status: scored." not in one
    assert "Save and send to gradebook" not in one

    groups = client.get(f"/lti/s/{token}/review/groups/").content.decode()
    assert "Antwortgruppen" in groups and "Gruppe 1: 1 Antwort," in groups
    assert "Diese Gruppe bewerten" in groups and "Score this group" not in groups


def test_an_english_launch_keeps_the_english_pages(client, course) -> None:
    submission = answered(course, "s1", "tcp and udp", score=1, confidence=0.4)
    german = course.launch("t1", instructor=True, locale="de-DE")
    client.get(f"/lti/s/{german}/review/")  # a German page first: nothing carries over
    token = course.launch("t2", instructor=True, locale="en-GB")
    one = client.get(f"/lti/s/{token}/review/{submission.pk}/").content.decode()
    assert "Save and send to gradebook" in one and "Speichern" not in one


def test_override_errors_come_out_in_german(client, course) -> None:
    submission = answered(course, "s1", "tcp", score=1, confidence=0.4)
    token = course.launch("t1", instructor=True, locale="de-DE")
    page = f"/lti/s/{token}/review/{submission.pk}/"

    refused = client.post(page, {"score": "7", "comment": ""})
    assert refused.status_code == 400
    assert "Geben Sie eine ganze Zahl von 0 bis 2 ein." in refused.content.decode()

    Criterion.objects.create(item=course.item, name="content", max_score=2, order=0)
    refused = client.post(page, {"criterion:content": "5", "criterion:style": "1"})
    html = refused.content.decode()
    assert refused.status_code == 400
    assert "style ist kein Kriterium von transport." in html
    assert "content: Geben Sie eine ganze Zahl von 0 bis 2 ein, nicht 5." in html
    assert "enter a whole number" not in html

    groups = f"/lti/s/{token}/review/groups/"
    refused = client.post(
        groups,
        {
            "submission_ids": [str(submission.pk)],
            "picked": [str(submission.pk)],
            "item_id": str(course.item.pk),
            "score": "1",
        },
    )
    assert refused.status_code == 400
    assert "Es wurden keine Antworten ausgewählt." in refused.content.decode()
    submission.refresh_from_db()
    assert submission.reviewed_score is None


def test_override_errors_stay_english_for_an_english_launch(client, course) -> None:
    submission = answered(course, "s1", "tcp", score=1, confidence=0.4)
    token = course.launch("t1", instructor=True)
    refused = client.post(f"/lti/s/{token}/review/{submission.pk}/", {"score": "7"})
    assert refused.status_code == 400
    assert "Enter a whole number from 0 to 2." in refused.content.decode()
