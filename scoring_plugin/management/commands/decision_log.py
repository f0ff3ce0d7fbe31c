"""Export the decision log (docs/trust.md) for a date range and, optionally, one course."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from scoring_plugin.decision_log import DecisionQuery, render


class Command(BaseCommand):
    help = (
        "Per scored answer: model version, probabilities, review threshold, flags, human review "
        "and final score. Dates are inclusive (YYYY-MM-DD, by when the answer was scored)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="start", required=True, type=date.fromisoformat)
        parser.add_argument("--to", dest="end", required=True, type=date.fromisoformat)
        parser.add_argument("--course", default="", help="LTI context id or title")
        parser.add_argument("--format", choices=["csv", "json"], default="csv")
        parser.add_argument("--output", help="write to this file instead of stdout")

    def handle(self, *args: object, **options: object) -> None:
        start, end = options["start"], options["end"]
        assert isinstance(start, date) and isinstance(end, date)
        if end < start:
            raise CommandError("--to is before --from")
        body, _ = render(DecisionQuery(start, end, str(options["course"])), str(options["format"]))
        if options.get("output"):
            Path(str(options["output"])).write_text(body, encoding="utf-8")
        else:
            self.stdout.write(body, ending="")
