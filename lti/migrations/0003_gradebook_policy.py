from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("lti", "0002_registration_invites"),
    ]

    operations = [
        migrations.AddField(
            model_name="itemltisettings",
            name="gradebook_policy",
            field=models.CharField(
                choices=[
                    ("latest", "latest graded attempt"),
                    ("highest", "highest graded attempt"),
                    ("first", "first attempt"),
                ],
                default="latest",
                help_text=(
                    "Which attempt's grade the LMS gradebook holds when a student answers more "
                    "than once: the latest graded attempt (default), the highest, or the first. "
                    "An attempt without a score yet (held for review, failed) never replaces a "
                    "grade already sent; it is sent as PendingManual only while no attempt has a "
                    "score."
                ),
                max_length=8,
            ),
        ),
        migrations.AlterField(
            model_name="ltisubmission",
            name="passback_status",
            field=models.CharField(
                choices=[
                    ("not_scored", "waiting for the score"),
                    ("queued", "queued"),
                    ("posted", "posted"),
                    ("retrying", "retrying"),
                    ("failed", "failed"),
                    ("other", "not sent: the gradebook holds another attempt"),
                    ("unavailable", "no grade service in the launch"),
                ],
                db_index=True,
                default="not_scored",
                max_length=12,
            ),
        ),
    ]
