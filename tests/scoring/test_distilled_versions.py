"""Distilled students are model versions: trained from a teacher version, served by workers."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError

from scoring_plugin.artifact_store import version_folder
from scoring_plugin.models import ModelVersion, Submission
from scoring_plugin.services import create_model_version, start_distillation
from tests.factories import SubmissionFactory
from workers import tasks


def _distilled_from(teacher: ModelVersion) -> ModelVersion:
    version = create_model_version(teacher.item, ModelVersion.Kind.DISTILLED)
    version.parent = teacher
    version.save()
    return version


def test_a_distilled_version_is_trained_activated_and_scores(trained_item) -> None:  # type: ignore[no-untyped-def]
    teacher = trained_item.active_version
    # Production answers the teacher scored become extra (unlabelled) training data.
    SubmissionFactory(item=trained_item, text="udp tcp layer", status="scored", score=2)
    student = _distilled_from(teacher)
    assert tasks.run_distillation(student, activate=True) == "ready"
    student.refresh_from_db()
    assert student.is_active and student.status == "ready"
    assert student.parent == teacher
    assert {"qwk", "accuracy", "teacher_qwk"} <= student.metrics.keys()
    assert (version_folder(student) / "student.onnx").is_file()
    # a distilled version gets its gaming check and model card like any trained version
    card = json.loads((version_folder(student) / "model_card.json").read_text())
    assert card["model_version"] == student.label and card["kind"] == "distilled"
    assert card["gaming_check"] == student.metrics["gaming"]
    assert (version_folder(student) / "model_card.md").read_text().startswith("# Model card")

    answer = SubmissionFactory(item=trained_item, text="tcp udp")
    assert tasks.score_submissions([str(answer.pk)]) == {str(answer.pk): "scored"}
    answer.refresh_from_db()
    assert answer.model_version == student
    assert answer.score in (0, 1, 2)
    assert abs(sum(answer.probabilities) - 1) < 1e-4


def test_rolling_back_to_the_teacher_serves_the_teacher_again(trained_item) -> None:  # type: ignore[no-untyped-def]
    from scoring_plugin.services import activate_version

    teacher = trained_item.active_version
    student = _distilled_from(teacher)
    tasks.run_distillation(student, activate=True)
    activate_version(teacher)
    answer = SubmissionFactory(item=trained_item, text="udp")
    tasks.score_submissions([str(answer.pk)])
    assert Submission.objects.get(pk=answer.pk).model_version == teacher


def test_a_student_cannot_teach(trained_item) -> None:  # type: ignore[no-untyped-def]
    student = _distilled_from(trained_item.active_version)
    tasks.run_distillation(student, activate=False)
    student.refresh_from_db()
    with pytest.raises(ValidationError, match="already a distilled student"):
        start_distillation(student)
    orphan = create_model_version(trained_item, ModelVersion.Kind.DISTILLED)
    assert tasks.run_distillation(orphan, activate=True) == "failed"
    orphan.refresh_from_db()
    assert "needs a ready teacher" in orphan.error
    assert trained_item.active_version == student.parent


def test_admin_distills_and_the_student_downloads_as_one_file(
    trained_item, client, monkeypatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from queueing import dispatch
    from tests.factories import UserFactory

    queued: list[int] = []
    monkeypatch.setattr(dispatch, "send_distillation", lambda pk, activate: queued.append(pk))
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    teacher = trained_item.active_version
    response = client.post(
        "/admin/scoring_plugin/modelversion/",
        {"action": "distill", "_selected_action": [teacher.pk]},
        follow=True,
    )
    assert "Distillation queued for 1 version" in response.content.decode()
    student = ModelVersion.objects.get(kind="distilled")
    assert student.parent == teacher and student.status == "pending"

    url = f"/admin/scoring_plugin/modelversion/{student.pk}/student.onnx"
    assert client.get(url).status_code == 404  # not trained yet
    tasks.run_distillation(student, activate=False)
    download = client.get(url)
    assert download.status_code == 200
    assert "student.onnx" in download["Content-Disposition"]
    alone = tmp_path / "laptop" / "student.onnx"  # the file alone scores, as on a laptop
    alone.parent.mkdir()
    alone.write_bytes(b"".join(download.streaming_content))
    from ml_core.distill.scorer import DistilledScorer

    (result,) = DistilledScorer(alone).score(["tcp udp"])
    assert result.score in (0, 1, 2) and result.error is None
    assert (
        client.get(f"/admin/scoring_plugin/modelversion/{teacher.pk}/student.onnx").status_code
        == 404
    )


def test_a_full_model_teaches_a_student(trained_item) -> None:  # type: ignore[no-untyped-def]
    from tests.scoring.conftest import training_examples

    teacher = create_model_version(trained_item, ModelVersion.Kind.FULL)
    examples = training_examples(trained_item)
    assert tasks.run_training(teacher, activate=True, examples=examples) == "ready"
    teacher.refresh_from_db()

    student = _distilled_from(teacher)
    assert tasks.run_distillation(student, activate=True) == "ready", student.error
    student.refresh_from_db()
    assert student.is_active and student.parent == teacher
    assert "teacher_qwk" in student.metrics
    answer = SubmissionFactory(item=trained_item, text="tcp udp")
    assert tasks.score_submissions([str(answer.pk)]) == {str(answer.pk): "scored"}
    answer.refresh_from_db()
    assert answer.model_version == student
