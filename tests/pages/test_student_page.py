"""The student's page in the LMS: accessible markup, German or English by the launch locale."""

from __future__ import annotations

from django.utils import timezone

from lti.models import LtiSubmission
from scoring_plugin.models import Submission


def test_answer_page_has_labels_and_a_live_region(client, course) -> None:
    html = client.get(f"/lti/s/{course.launch('s1')}/").content.decode()
    assert '<html lang="en">' in html
    assert '<label for="answer">Your answer</label>' in html
    assert 'id="score-live" role="status" aria-live="polite"' in html
    assert 'role="alert"' in html


def test_launch_locale_de_shows_the_page_in_german(client, course) -> None:
    token = course.launch("s1", locale="de-DE")
    html = client.get(f"/lti/s/{token}/").content.decode()
    assert '<html lang="de">' in html
    assert "Ihre Antwort" in html and "Antwort abschicken" in html
    assert "Your answer" not in html


def test_status_feedback_is_translated(client, course) -> None:
    token = course.launch("s1", locale="de")
    client.post(
        f"/lti/s/{token}/answer/",
        {"answer": "Weil TCP die Reihenfolge der Segmente sichert und UDP das nicht tut."},
    )
    submission = Submission.objects.get()
    submission.status, submission.score, submission.confidence = "scored", 2, 0.9
    submission.scored_at = timezone.now()
    submission.save()
    LtiSubmission.objects.filter(pk=submission.pk).update(passback_status="posted")
    state = client.get(f"/lti/s/{token}/status/").json()
    (answer,) = state["submissions"]
    assert answer["feedback"].startswith("Punkte: 2 von 2.")
    assert answer["status_label"] == "bewertet"


def test_unknown_locale_falls_back_to_english(client, course) -> None:
    html = client.get(f"/lti/s/{course.launch('s1', locale='xx-YY')}/").content.decode()
    assert "Your answer" in html


def test_student_answer_with_script_is_escaped(client, course) -> None:
    token = course.launch("s1")
    client.post(f"/lti/s/{token}/answer/", {"answer": "<script>alert(1)</script>"})
    client.post(f"/lti/s/{token}/answer/", {"answer": ""})  # a rejected second attempt
    html = client.get(f"/lti/s/{token}/").content.decode()
    assert "<script>alert(1)</script>" not in html
    error = client.post(f"/lti/s/{token}/answer/", {"answer": "<img src=x onerror=alert(1)>"})
    assert b"<img src=x" not in error.content
