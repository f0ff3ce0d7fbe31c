"""Train a model version for items in this process, with a progress bar, and activate it."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from scoring_plugin.models import Item, ModelVersion
from scoring_plugin.services import create_model_version, training_data, training_kind
from workers.tasks import run_training

# Kinds trained from an item's answers (merged and distilled versions come from other versions).
TRAINABLE_KINDS = [
    ModelVersion.Kind.AUTO.value,
    ModelVersion.Kind.HEAD.value,
    ModelVersion.Kind.LORA.value,
    ModelVersion.Kind.FULL.value,
]


class Command(BaseCommand):
    help = (
        "Train a new model version for each item (all items, or those named) and activate it. "
        "Runs here, not on the training queue: use admin or the API to train through workers."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("keys", nargs="*", help="item keys (default: every item)")
        parser.add_argument(
            "--kind",
            choices=TRAINABLE_KINDS,
            default=None,
            help="auto, head, lora or full (default: SCORING_TRAIN_KIND, which defaults to auto)",
        )
        parser.add_argument(
            "--only-untrained", action="store_true", help="skip items that have an active model"
        )

    def handle(self, *args: object, **options: object) -> None:
        from django.conf import settings

        kind = str(options["kind"] or settings.SCORING_TRAIN_KIND)
        items = Item.objects.all()
        keys = list(options["keys"])  # type: ignore[call-overload]
        if keys:
            items = items.filter(key__in=keys)
            missing = set(keys) - set(items.values_list("key", flat=True))
            if missing:
                raise CommandError(f"unknown item(s): {', '.join(sorted(missing))}")
        if options["only_untrained"]:
            items = items.exclude(model_versions__is_active=True)
        items = list(items)
        failed = []
        with tqdm(items, desc=f"training ({kind})", unit="item") as bar:
            for item in bar:
                bar.set_postfix_str(item.key)
                item_kind, note = training_kind(item, kind)  # analytic items train head
                if note:
                    bar.write(note)
                version = create_model_version(item, item_kind)
                ModelVersion.objects.filter(pk=version.pk).update(
                    status=ModelVersion.Status.TRAINING
                )
                examples, groups = training_data(item)
                outcome = run_training(version, activate=True, examples=examples, groups=groups)
                version.refresh_from_db()
                if outcome != "ready":
                    failed.append(f"{item.key}: {version.error or outcome}")
                else:
                    bar.write(
                        f"{item.key}: v{version.number} QWK {version.metrics.get('qwk', 0):.3f} "
                        f"accuracy {version.metrics.get('accuracy', 0):.3f}"
                    )
        if failed:
            raise CommandError("training failed for " + "; ".join(failed))
        self.stdout.write(self.style.SUCCESS(f"Trained and activated {len(items)} item(s)."))
