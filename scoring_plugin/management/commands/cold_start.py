"""Which answers of an item to score next, and how many more it needs (issue 16)."""

from __future__ import annotations

import json

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from scoring_plugin.cold_start import (
    DEFAULT_BATCH,
    compute_report,
    describe,
    request_report,
)
from scoring_plugin.models import ColdStartReport, Item


class Command(BaseCommand):
    help = (
        "Suggest the next batch of an item's answers to score (answers imported without a "
        "score, and submissions waiting for a model) and show its learning curve with the "
        "scored answers needed to reach a target QWK. By default the work is queued on the "
        "training queue and the last computed report is shown; --now computes it here (loads "
        "the backbone)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("item", help="the item's key (item_id)")
        parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="answers to suggest")
        parser.add_argument(
            "--target", type=float, default=None, help="target QWK (default: the item's)"
        )
        parser.add_argument("--now", action="store_true", help="compute here, not in a worker")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args: object, **options: object) -> None:
        key = str(options["item"])
        item = Item.objects.filter(key=key).first()
        if item is None:
            raise CommandError(f"no item with key '{key}'")
        batch = int(str(options["batch"]))
        target = (
            item.effective_target_qwk if options["target"] is None else float(options["target"])
        )  # type: ignore[arg-type]
        try:
            if options["now"]:
                from ml_core.embeddings import EmbeddingCache, frozen_embedder

                embed = EmbeddingCache(frozen_embedder(settings.SCORING_BACKBONE or None, "mean"))
                result = compute_report(item, embed, batch_size=batch, target_qwk=target)
            else:
                previous = ColdStartReport.objects.filter(
                    item=item, status=ColdStartReport.Status.READY
                ).first()
                request_report(item, batch_size=batch, target_qwk=target)
                self.stdout.write("Queued on the training queue; run again to see the result.")
                if previous is None:
                    return
                self.stdout.write(f"Last report (computed {previous.computed_at:%Y-%m-%d %H:%M}):")
                result = previous.result
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=1))
        else:
            self.stdout.write("\n".join(describe(result)))
