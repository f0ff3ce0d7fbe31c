"""Run-time gaming flags: a student's answer that copies the prompt, lists key terms or hides
invisible characters is flagged on submission and goes to review even when the model is sure."""

from __future__ import annotations

import json

import pytest

from lti import tasks
from lti.models import ItemLtiSettings
from scoring_plugin.models import Submission
from scoring_plugin.review import ReviewFilter
from tests.factories import ScoredAnswerFactory
from tests.lti.lti_platform import INSTRUCTOR
from tests.lti.lti_scoring import CapturedTasks, finish
from tests.lti.test_lti_flow import submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def captured(monkeypatch) -> CapturedTasks:  # type: ignore[no-untyped-def]
    captured = CapturedTasks()
    monkeypatch.setattr(tasks.post_score, "apply_async", captured.apply_async)
    return captured


def test_flagged_answers_go_to_review_and_the_gradebook_waits(
    platform, item, browser, captured
) -> None:
    ItemLtiSettings.objects.create(item=item, max_attempts=0)
    for text in (
        "Segments are reordered and lost segments are detected by the receiver.",
        "The receiver can reorder segments and detect loss or duplicated segments.",
    ):
        ScoredAnswerFactory(item=item, text=text, score=item.max_score)
    url = browser.open(platform)
    answers = {
        "genuine": "So the receiver can put the segments back in order and see what is missing.",
        "prompt": "Why does TCP use sequence numbers?",
        "terms": "segments, reorder, detect, receiver, lost, duplicated",
        "invisible": "To\u200border\u200bsegments\u200band\u200bdetect\u200bloss.",
    }
    ids = {name: submit(browser, url, text).json()["id"] for name, text in answers.items()}
    flags = {name: Submission.objects.get(pk=pk).flags for name, pk in ids.items()}
    assert flags == {
        "genuine": [],
        "prompt": ["copies_prompt"],
        "terms": ["key_term_list"],
        "invisible": ["invisible_characters"],
    }
    for pk in ids.values():
        finish(pk, score=3, confidence=0.99)  # the model is sure and gives full marks
    captured.run_all()
    (genuine, *flagged) = [Submission.objects.get(pk=ids[n]) for n in answers]
    assert not genuine.needs_review and all(s.needs_review for s in flagged)
    waiting = ReviewFilter(needs_review=True).apply(Submission.objects.all())
    assert set(map(str, waiting.values_list("pk", flat=True))) == {
        ids["prompt"],
        ids["terms"],
        ids["invisible"],
    }
    # The genuine answer's grade is posted; the held attempts never blank it (gradebook policy).
    progress = [s["gradingProgress"] for s in platform.scores_for("student-1")]
    assert progress == ["FullyGraded"]


def test_instructors_see_the_model_card_students_do_not(platform, item, make_browser) -> None:
    from tests.factories import LtiModelVersionFactory
    from tests.lti.test_lti_flow import token_of

    LtiModelVersionFactory(item=item, metrics={"accuracy": 0.8, "n_test": 40, "qwk": 0.7})
    teacher = make_browser()
    token = token_of(teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR]))
    review = teacher.get(f"/lti/s/{token}/review/")
    assert 'id="model-card-link"' in review.content.decode()
    page = teacher.get(f"/lti/s/{token}/model-card/")
    assert page.status_code == 200
    assert "Model card: item-1@v1" in page.content.decode()
    assert "95% CI [0.6" in page.content.decode()
    card = teacher.get(f"/lti/s/{token}/model-card/?format=json")
    assert json.loads(card.content)["model_version"] == "item-1@v1"
    assert teacher.get(f"/lti/s/{token}/model-card/?item=other").status_code == 404
    student = make_browser()
    student_token = token_of(student.open(platform))
    assert student.get(f"/lti/s/{student_token}/model-card/").status_code == 403
