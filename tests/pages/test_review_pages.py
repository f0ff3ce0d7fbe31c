"""Instructor review in the LMS: filters, overrides to the gradebook, agreement, CSV, roles."""

from __future__ import annotations

import csv
import io

from django.utils import timezone

from lti.models import LtiSubmission
from scoring_plugin.models import AuditLog, ModelVersion, Submission
from tests.factories import ItemFactory


def answered(course, sub: str, text: str, *, score: int, confidence: float, name: str = ""):  # type: ignore[no-untyped-def]
    """A scored answer of ``sub`` through the course's link."""
    version, _ = ModelVersion.objects.get_or_create(
        item=course.item, number=1, defaults={"status": "ready", "is_active": True}
    )
    submission = Submission.objects.create(
        item=course.item,
        text=text,
        status=Submission.Status.SCORED,
        score=score,
        confidence=confidence,
        model_version=version,
        scored_at=timezone.now(),
    )
    LtiSubmission.objects.create(
        submission=submission,
        context=course.context,
        resource_link=course.link,
        lti_user=course.user(sub, name),
        line_item_url="https://course.example/lineitems/1",
    )
    return submission


def test_filters_needs_review_low_confidence_item_and_student(client, course) -> None:
    sure = answered(course, "s1", "tcp and udp", score=2, confidence=0.95, name="Ada")
    unsure = answered(course, "s2", "tcp maybe", score=1, confidence=0.4, name="Brendan")
    token = course.launch("t1", instructor=True)
    url = f"/lti/s/{token}/review/"

    def ids(**query: str) -> set[str]:
        html = client.get(url, query).content.decode()
        return {str(s.pk) for s in (sure, unsure) if f'data-id="{s.pk}"' in html}

    assert ids() == {str(sure.pk), str(unsure.pk)}
    assert ids(needs_review="1") == {str(unsure.pk)}
    assert ids(low_confidence="0.99") == {str(sure.pk), str(unsure.pk)}
    assert ids(low_confidence="0.5") == {str(unsure.pk)}
    assert ids(student="ada") == {str(sure.pk)}
    assert ids(item="other") == set()
    assert ids(item=course.item.key) == {str(sure.pk), str(unsure.pk)}


def test_override_reaches_the_gradebook_and_the_audit_log(
    client, course, passback, django_capture_on_commit_callbacks
) -> None:
    submission = answered(course, "s1", "tcp", score=1, confidence=0.4)
    token = course.launch("t1", instructor=True, name="Teacher")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/lti/s/{token}/review/{submission.pk}/", {"score": "2", "comment": "UDP is named"}
        )
    assert response.status_code == 302
    submission.refresh_from_db()
    assert submission.reviewed_score == 2 and submission.review_comment == "UDP is named"
    assert submission.reviewed_via == "lti"
    assert passback == [str(submission.pk)]
    entry = AuditLog.objects.get(action="override")
    assert entry.actor == "lti:Teacher" and entry.details["score"] == 2


def test_agreement_per_item_and_csv_export(client, course, passback) -> None:
    a = answered(course, "s1", '=HYPERLINK("x")', score=1, confidence=0.4, name="Ada")
    b = answered(course, "s2", "tcp udp", score=2, confidence=0.9, name="Brendan")
    token = course.launch("t1", instructor=True)
    client.post(f"/lti/s/{token}/review/{a.pk}/", {"score": "2"})
    client.post(f"/lti/s/{token}/review/{b.pk}/", {"score": "2"})
    html = client.get(f"/lti/s/{token}/review/").content.decode()
    table = html.split('id="agreement"')[1].split("</table>")[0]
    assert "<td>2</td>" in table and "0.500" in table  # 2 reviewed, half agree
    assert "human 2, predicted 1: 1" in table
    export = client.get(f"/lti/s/{token}/review/", {"export": "csv", "student": "Ada"})
    assert export["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.content.decode())))
    assert [r["submission_id"] for r in rows] == [str(a.pk)]
    assert rows[0]["final_score"] == "2" and rows[0]["auto_score"] == "1"
    assert rows[0]["answer"].startswith("'=")  # no spreadsheet formula


def test_students_cannot_open_the_review_page_or_override(client, course) -> None:
    submission = answered(course, "s1", "tcp", score=1, confidence=0.4)
    token = course.launch("s1")
    assert client.get(f"/lti/s/{token}/review/").status_code == 403
    response = client.post(f"/lti/s/{token}/review/{submission.pk}/", {"score": "2"})
    assert response.status_code == 403
    submission.refresh_from_db()
    assert submission.reviewed_score is None


def test_instructor_sees_only_their_own_course(client, course, make_course) -> None:
    other = make_course(ItemFactory(key="elsewhere"), name="other")
    theirs = answered(other, "x1", "secret answer", score=1, confidence=0.3)
    token = course.launch("t1", instructor=True)
    html = client.get(f"/lti/s/{token}/review/").content.decode()
    assert str(theirs.pk) not in html and "secret answer" not in html
    assert client.get(f"/lti/s/{token}/review/{theirs.pk}/").status_code == 404


def test_student_text_is_escaped_on_review_pages(client, course) -> None:
    evil = "<script>alert('pwned')</script>"
    submission = answered(course, "s1", evil, score=1, confidence=0.4, name="<b>Eve</b>")
    token = course.launch("t1", instructor=True)
    for url in (f"/lti/s/{token}/review/", f"/lti/s/{token}/review/{submission.pk}/"):
        html = client.get(url).content.decode()
        assert "<script>alert('pwned')" not in html and "<b>Eve</b>" not in html
    one = client.get(f"/lti/s/{token}/review/{submission.pk}/").content.decode()
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in one


def test_malformed_filters_show_everything(client, course) -> None:
    answered(course, "s1", "tcp", score=1, confidence=0.4)
    token = course.launch("t1", instructor=True)
    for value in ("abc", "nan", ""):
        response = client.get(f"/lti/s/{token}/review/", {"low_confidence": value})
        assert response.status_code == 200 and 'data-id="' in response.content.decode()
