"""Finishing a submission the way the scoring worker does: the row is marked scored (or failed)
and ``submission_finished`` is sent; grade passback tasks are captured as they are enqueued."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils import timezone

from scoring_plugin.models import ModelVersion, Submission
from scoring_plugin.signals import submission_finished


def finish(submission_id: str, *, score: int | None, confidence: float = 0.9) -> Submission:
    submission = Submission.objects.select_related("item").get(pk=submission_id)
    if score is None:
        submission.mark_failed("engine error")
    else:
        version, _ = ModelVersion.objects.get_or_create(
            item=submission.item,
            number=1,
            defaults={"status": ModelVersion.Status.READY, "is_active": True},
        )
        submission.status = Submission.Status.SCORED
        submission.score = score
        submission.confidence = confidence
        submission.model_version = version
        submission.scored_at = timezone.now()
    submission.save()
    submission_finished.send(
        sender=Submission, submission_id=str(submission.pk), status=submission.status
    )
    return submission


@dataclass
class CapturedTasks:
    """``post_score.apply_async`` calls, so a test can check the queue and then run them."""

    calls: list[tuple[list[str], dict[str, object]]] = field(default_factory=list)

    def apply_async(self, args: list[str], **options: object) -> None:
        self.calls.append((list(args), options))

    def run_all(self) -> list[str]:
        from lti.tasks import post_score

        results = []
        calls, self.calls = self.calls, []
        for args, options in calls:
            assert options.get("queue") == "lms"
            results.append(post_score.apply(args=args).get())
        return results
