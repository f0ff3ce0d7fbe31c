"""Export, erase or pseudonymise everything held about one LMS user (docs/trust.md)."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from scoring_plugin import privacy


class Command(BaseCommand):
    help = (
        "export: print (or --output) everything held about an LMS user as JSON or CSV. "
        "erase: delete it (--mode erase) or keep only its scores under a pseudonym "
        "(--mode pseudonymise); training copies and artifact files are cleaned in both modes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("operation", choices=["export", "erase"])
        parser.add_argument("--lms-user", required=True, help="the LMS user id (LTI sub)")
        parser.add_argument("--issuer", default="", help="the platform's issuer, if ambiguous")
        parser.add_argument("--format", choices=["json", "csv"], default="json")
        parser.add_argument("--output", help="write the export to this file")
        parser.add_argument("--mode", choices=privacy.MODES, default="erase")
        parser.add_argument("--actor", default="command:student_data")

    def handle(self, *args: object, **options: object) -> None:
        handle = privacy.StudentHandle(str(options["lms_user"]), str(options["issuer"] or ""))
        try:
            records = privacy.collect(handle)
            if options["operation"] == "export":
                data = privacy.export_data(records)
                fmt = str(options["format"])
                text = (
                    privacy.export_csv(data)
                    if fmt == "csv"
                    else json.dumps(data, indent=2, ensure_ascii=False) + "\n"
                )
                privacy.record_export(records, str(options["actor"]), fmt)
                if options.get("output"):
                    Path(str(options["output"])).write_text(text, encoding="utf-8")
                else:
                    self.stdout.write(text, ending="")
                return
            report = privacy.erase(records, str(options["actor"]), mode=str(options["mode"]))
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(json.dumps(report.to_json(), indent=2) + "\n", ending="")
