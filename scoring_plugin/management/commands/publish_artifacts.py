"""Upload the artifacts of existing versions from the artifacts folder to the configured store.

After migration 0009 (or when switching SCOREBRIDGE_ARTIFACT_STORE to s3://...), versions name
their artifact by key and hash but the files are still in SCOREBRIDGE_ARTIFACTS_DIR on the
machine that trained them. Run this there once: each folder whose content matches the version's
hash is uploaded (a version without a hash gets the hash of its folder).
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from ml_core.artifact_store import folder_hash
from scoring_plugin.artifact_store import store
from scoring_plugin.models import ModelVersion


class Command(BaseCommand):
    help = "Upload versions' artifact folders from SCOREBRIDGE_ARTIFACTS_DIR to the store."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="only say what would be done")

    def handle(self, *args: object, **options: object) -> None:
        root = Path(settings.ARTIFACTS_DIR)
        target = store()
        problems = 0
        for version in ModelVersion.objects.exclude(artifact_key="").select_related("item"):
            folder = root / version.artifact_key
            if not folder.is_dir():
                self.stdout.write(f"{version.label}: {folder} is missing; skipped")
                problems += 1
                continue
            actual = folder_hash(folder)
            if version.artifact_hash and actual != version.artifact_hash:
                self.stdout.write(f"{version.label}: {folder} does not match its hash; skipped")
                problems += 1
                continue
            if options["dry_run"]:
                self.stdout.write(f"{version.label}: would upload {version.artifact_key}")
                continue
            key, content_hash = target.put_folder(folder, version.artifact_key)
            ModelVersion.objects.filter(pk=version.pk).update(
                artifact_key=key, artifact_hash=content_hash
            )
            self.stdout.write(f"{version.label}: {key} {content_hash}")
        if problems:
            self.stderr.write(f"{problems} version(s) not uploaded")
