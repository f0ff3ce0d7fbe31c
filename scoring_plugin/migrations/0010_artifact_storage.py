# Data steps by hand (issue 19): versions name their artifact by a storage key and a hash.

from pathlib import Path, PurePosixPath

from django.conf import settings
from django.db import migrations, models

from ml_core.artifact_store import ArtifactStoreError, folder_hash


def legacy_path_to_key(path, artifacts_dir):
    """The storage key of an absolute artifact path: relative to ``artifacts_dir``, else (the
    var folder moved since) the part after its last ``artifacts`` folder; "" when neither."""
    if not path:
        return ""
    candidate = Path(path)
    if not candidate.is_absolute():
        return PurePosixPath(path).as_posix()
    root = Path(artifacts_dir)
    for base in (root, root.resolve()):
        try:
            return candidate.relative_to(base).as_posix()
        except ValueError:
            pass
    parts = candidate.parts
    if "artifacts" in parts[:-1]:
        last = len(parts) - 1 - parts[::-1].index("artifacts")
        return PurePosixPath(*parts[last + 1 :]).as_posix()
    return ""


def paths_to_keys(apps, schema_editor):
    """Absolute paths become keys relative to the artifacts folder, with the hash of the folder
    where it exists (a folder already gone keeps an empty hash and fails to load, as before)."""
    ModelVersion = apps.get_model("scoring_plugin", "ModelVersion")
    root = Path(settings.ARTIFACTS_DIR)
    for version in ModelVersion.objects.exclude(artifact_key="").order_by("pk"):
        old = version.artifact_key
        key = legacy_path_to_key(old, root)
        folder = root / key if key else Path(old)
        try:
            content_hash = folder_hash(folder) if folder.is_dir() else ""
        except (ArtifactStoreError, OSError):
            content_hash = ""
        if not key:  # outside any artifacts folder: keep a note of where it was
            version.note = (version.note + f"\nartifact was outside the artifacts folder: {old}")[
                -2000:
            ].strip()
        version.artifact_key = key
        version.artifact_hash = content_hash
        version.save(update_fields=["artifact_key", "artifact_hash", "note"])


def keys_to_paths(apps, schema_editor):
    ModelVersion = apps.get_model("scoring_plugin", "ModelVersion")
    root = Path(settings.ARTIFACTS_DIR)
    for version in ModelVersion.objects.exclude(artifact_key="").order_by("pk"):
        version.artifact_key = str(root / version.artifact_key)
        version.save(update_fields=["artifact_key"])


class Migration(migrations.Migration):
    dependencies = [
        ("scoring_plugin", "0009_student_feedback"),
    ]

    operations = [
        migrations.RenameField(
            model_name="modelversion", old_name="artifact_path", new_name="artifact_key"
        ),
        migrations.AddField(
            model_name="modelversion",
            name="artifact_hash",
            field=models.CharField(
                blank=True,
                help_text="sha256 of the artifact's files (names and bytes), checked when a "
                "worker fetches it.",
                max_length=80,
            ),
        ),
        migrations.RunPython(paths_to_keys, keys_to_paths),
        migrations.AlterField(
            model_name="modelversion",
            name="artifact_key",
            field=models.CharField(
                blank=True,
                help_text="Where the artifact is stored: a key relative to the artifact store "
                "(SCOREBRIDGE_ARTIFACT_STORE, else the artifacts folder), never an absolute path.",
                max_length=500,
            ),
        ),
    ]
