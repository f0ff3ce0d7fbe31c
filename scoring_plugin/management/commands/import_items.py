"""Import items and human-scored answers from CSV files in the SAF layout."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from scoring_plugin.services import ImportError_, import_item_bank


class Command(BaseCommand):
    help = (
        "Import items.csv and responses.csv (SAF layout). Give a folder holding both, or the "
        "files with --items/--responses. All rows are checked first; on any error nothing is "
        "imported."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("folder", nargs="?", help="folder with items.csv and responses.csv")
        parser.add_argument("--items", help="path of items.csv")
        parser.add_argument("--responses", help="path of responses.csv")

    def handle(self, *args: object, **options: object) -> None:
        items = options.get("items")
        responses = options.get("responses")
        folder = options.get("folder")
        if folder:
            base = Path(str(folder))
            if not base.is_dir():
                raise CommandError(f"{base} is not a folder")
            items = items or base / "items.csv"
            responses = responses or base / "responses.csv"
        if not items and not responses:
            raise CommandError("give a folder, --items, or --responses")
        for path in (items, responses):
            if path and not Path(str(path)).is_file():
                raise CommandError(f"{path} does not exist")
        try:
            summary = import_item_bank(
                Path(str(items)) if items else None, Path(str(responses)) if responses else None
            )
        except ImportError_ as exc:
            raise CommandError(f"nothing was imported: {exc.message}") from exc
        self.stdout.write(self.style.SUCCESS(f"Imported: {summary}."))
