from pathlib import Path

from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _private_sqlite_files(sender: object, connection: object, **_: object) -> None:
    """A SQLite database (API token hashes, LTI private keys) is readable by its owner only:
    the file, its -wal and -shm, and the test database Django creates."""
    if getattr(connection, "vendor", "") != "sqlite":
        return
    from scorebridge.settings import private_mode

    name = str(connection.settings_dict.get("NAME") or "")  # type: ignore[attr-defined]
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    for suffix in ("", "-wal", "-shm", "-journal"):
        private_mode(Path(name + suffix))


class ScoringPluginConfig(AppConfig):
    name = "scoring_plugin"
    verbose_name = "Scorebridge scoring"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        connection_created.connect(_private_sqlite_files, dispatch_uid="scorebridge-private-db")
        from scoring_plugin import admin_tokens  # noqa: F401  (registers the token admin)
        from scoring_plugin.cold_start import on_submission_reviewed
        from scoring_plugin.models import Submission
        from scoring_plugin.signals import submission_reviewed

        submission_reviewed.connect(
            on_submission_reviewed, sender=Submission, dispatch_uid="scoring-cold-start-report"
        )
