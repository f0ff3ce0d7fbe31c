"""One override, one truth (issue 15): the LTI copy of an instructor's score
(``LtiSubmission.override_*``) moves into ``Submission.reviewed_*``, which passback now reads,
and the copy goes away.

Where both hold a score the LTI copy wins: it is what the gradebook was sent.
"""

from django.db import migrations


def copy_overrides_to_submissions(apps, schema_editor):
    LtiSubmission = apps.get_model("lti", "LtiSubmission")
    Submission = apps.get_model("scoring_plugin", "Submission")
    links = LtiSubmission.objects.filter(override_score__isnull=False).select_related(
        "overridden_by"
    )
    for link in links.iterator():
        reviewer = link.overridden_by
        changes = {
            "reviewed_score": link.override_score,
            "review_comment": link.override_comment,
            "reviewed_via": "lti",
        }
        if reviewer is not None:
            changes["reviewed_by"] = f"lti:{reviewer.name or reviewer.sub}"[:200]
        if link.overridden_at is not None:
            changes["reviewed_at"] = link.overridden_at
        Submission.objects.filter(pk=link.submission_id).update(**changes)


def copy_reviews_back(apps, schema_editor):
    LtiSubmission = apps.get_model("lti", "LtiSubmission")
    Submission = apps.get_model("scoring_plugin", "Submission")
    reviewed = Submission.objects.filter(reviewed_score__isnull=False, lti__isnull=False)
    for submission in reviewed.iterator():
        LtiSubmission.objects.filter(pk=submission.pk).update(
            override_score=submission.reviewed_score,
            override_comment=submission.review_comment,
            overridden_at=submission.reviewed_at,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("lti", "0003_gradebook_policy"),
        ("scoring_plugin", "0008_one_override"),
    ]

    operations = [
        migrations.RunPython(copy_overrides_to_submissions, copy_reviews_back),
        migrations.RemoveField(model_name="ltisubmission", name="overridden_at"),
        migrations.RemoveField(model_name="ltisubmission", name="overridden_by"),
        migrations.RemoveField(model_name="ltisubmission", name="override_comment"),
        migrations.RemoveField(model_name="ltisubmission", name="override_score"),
    ]
