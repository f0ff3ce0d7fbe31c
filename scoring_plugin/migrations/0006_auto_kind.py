"""Issue 13: the ``auto`` model kind, and review thresholds chosen per model version.

``Item.review_threshold`` becomes optional: items still at the old fixed default (0.6) take the
threshold of the model that scored an answer, or ``SCOREBRIDGE_REVIEW_THRESHOLD``.
"""

from django.db import migrations, models

OLD_FIXED_THRESHOLD = 0.6


def forget_fixed_default(apps, schema_editor):  # type: ignore[no-untyped-def]
    Item = apps.get_model("scoring_plugin", "Item")
    Item.objects.filter(review_threshold=OLD_FIXED_THRESHOLD).update(review_threshold=None)


def restore_fixed_default(apps, schema_editor):  # type: ignore[no-untyped-def]
    Item = apps.get_model("scoring_plugin", "Item")
    Item.objects.filter(review_threshold__isnull=True).update(review_threshold=OLD_FIXED_THRESHOLD)


class Migration(migrations.Migration):
    dependencies = [
        ("scoring_plugin", "0005_hashed_api_tokens"),
    ]

    operations = [
        migrations.AlterField(
            model_name="modelversion",
            name="kind",
            field=models.CharField(
                choices=[
                    ("head", "frozen backbone + head"),
                    ("lora", "frozen backbone + LoRA adapter + head"),
                    ("full", "fully fine-tuned"),
                    ("merged", "merged group (shared layers + this item's head)"),
                    ("distilled", "distilled student (tiny BiLSTM, ONNX)"),
                    ("auto", "auto: lexical + frozen backbone, stacked and calibrated (default)"),
                ],
                default="head",
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="review_threshold",
            field=models.FloatField(
                blank=True,
                null=True,
                help_text="The confidence below which this version's scores go to review, chosen "
                "at training for the target agreement; empty for kinds that do not choose one.",
            ),
        ),
        migrations.AlterField(
            model_name="item",
            name="review_threshold",
            field=models.FloatField(
                blank=True,
                default=None,
                null=True,
                help_text="Auto-scores with a confidence below this are flagged for an instructor. "
                "Empty: the threshold the scoring model chose for the target agreement "
                "(SCOREBRIDGE_TARGET_AGREEMENT), or SCOREBRIDGE_REVIEW_THRESHOLD for models "
                "without one.",
            ),
        ),
        migrations.RunPython(forget_fixed_default, restore_fixed_default),
    ]
