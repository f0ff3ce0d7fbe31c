"""Issue 19, item 1: versions name their artifact by a storage key and a content hash; the
artifacts live in a local folder or a real S3-compatible server (SeaweedFS, started by the
tests); workers fetch, verify and cache them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from ml_core.artifact_store import (
    ArtifactStoreError,
    LocalFolderStore,
    S3Location,
    S3Store,
    folder_hash,
)
from scoring_plugin import artifact_store
from scoring_plugin.models import ModelVersion, Submission
from scoring_plugin.services import create_model_version, training_examples
from tests.factories import ItemFactory, SubmissionFactory
from tests.scoring.conftest import add_scored_answers, train_active_version
from tests.scoring.seaweed import BUCKET
from workers import engine_host, tasks


def _artifact(folder: Path) -> Path:
    (folder / "sub").mkdir(parents=True)
    (folder / "manifest.json").write_text('{"item_id": "x"}')
    (folder / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 64)
    return folder


def _objects(server, bucket: str, prefix: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    listed = server.client().list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {entry["Key"]: entry["Size"] for entry in listed}


def test_hash_covers_names_and_bytes_in_a_defined_order(tmp_path: Path) -> None:
    a = _artifact(tmp_path / "a")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    assert folder_hash(a) == folder_hash(b) and folder_hash(a).startswith("sha256:")
    (b / "model_card.md").write_text("documentation written after publishing")
    assert folder_hash(a) == folder_hash(b)  # model cards are not part of the model
    (b / "sub" / "weights.bin").rename(b / "sub" / "weights2.bin")
    assert folder_hash(a) != folder_hash(b)


def test_s3_upload_fetch_verify_and_refetch_a_corrupted_cache(s3_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bucket, prefix = BUCKET, f"{tmp_path.name}/p"
    root = tmp_path / "artifacts"
    local = _artifact(root / "item-1" / "v1-head")
    store = S3Store(
        S3Location.parse(f"s3://{bucket}/{prefix}"), s3_server.client(), tmp_path / "c1", root
    )
    key, content_hash = store.put_folder(local)
    assert key == "item-1/v1-head" and content_hash == folder_hash(local)
    assert set(_objects(s3_server, bucket, prefix)) == {
        f"{prefix}/item-1/v1-head/manifest.json",
        f"{prefix}/item-1/v1-head/sub/weights.bin",
    }

    # another machine: its own cache, nothing but the key and the hash
    other = S3Store(
        S3Location.parse(f"s3://{bucket}/{prefix}"), s3_server.client(), tmp_path / "c2"
    )
    fetched = other.fetch(key, content_hash)
    assert fetched.parent == tmp_path / "c2" and folder_hash(fetched) == content_hash
    assert (fetched / "sub" / "weights.bin").read_bytes() == (
        local / "sub/weights.bin"
    ).read_bytes()

    # a cached file corrupted on disk: the next process notices and downloads it again
    (fetched / "sub" / "weights.bin").write_bytes(b"bit rot")
    again = S3Store(
        S3Location.parse(f"s3://{bucket}/{prefix}"), s3_server.client(), tmp_path / "c2"
    )
    assert again.fetch(key, content_hash) == fetched
    assert folder_hash(fetched) == content_hash

    # a corrupted object in the store is refused, and nothing is left in the cache
    s3_server.client().put_object(
        Bucket=bucket, Key=f"{prefix}/item-1/v1-head/manifest.json", Body=b"{}"
    )
    fresh = S3Store(
        S3Location.parse(f"s3://{bucket}/{prefix}"), s3_server.client(), tmp_path / "c3"
    )
    with pytest.raises(ArtifactStoreError, match="does not match its hash"):
        fresh.fetch(key, content_hash)
    assert not any(p.is_dir() for p in (tmp_path / "c3").iterdir())

    with pytest.raises(ArtifactStoreError, match="not an artifact storage key"):
        fresh.fetch("/etc", content_hash)


def test_local_store_refuses_a_folder_that_changed(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    local = _artifact(root / "item-1" / "v1-head")
    key, content_hash = LocalFolderStore(root).put_folder(local)
    assert key == "item-1/v1-head"
    assert LocalFolderStore(root).fetch(key, content_hash) == local
    (local / "manifest.json").write_text('{"item_id": "y"}')
    with pytest.raises(ArtifactStoreError, match="does not match its hash"):
        LocalFolderStore(root).fetch(key, content_hash)


def test_a_version_trained_into_s3_is_scored_from_the_cache_alone(db, s3_settings) -> None:  # type: ignore[no-untyped-def]
    item = ItemFactory(key="transport-protocols")
    add_scored_answers(item)
    version = train_active_version(item)
    assert not Path(version.artifact_key).is_absolute()
    assert version.artifact_key == f"{item.key}/v1-head"
    assert version.artifact_hash.startswith("sha256:")
    bucket = s3_settings.ARTIFACT_STORE.removeprefix("s3://").split("/")[0]
    assert s3_settings.S3_ENDPOINT_URL
    prefix = s3_settings.ARTIFACT_STORE.removeprefix(f"s3://{bucket}/")
    listed = _server_objects(s3_settings, bucket, prefix)
    assert listed and all(k.startswith(f"{prefix}/{item.key}/v1-head/") for k in listed)

    # a scoring machine without the training folder: only the store and its own cache
    shutil.rmtree(s3_settings.ARTIFACTS_DIR)
    engine_host.reset()
    answer = SubmissionFactory(item=item, text="tcp udp")
    assert tasks.score_submissions([str(answer.pk)]) == {str(answer.pk): "scored"}
    cached = Path(s3_settings.ARTIFACT_CACHE_DIR) / version.artifact_hash.removeprefix("sha256:")
    assert folder_hash(cached) == version.artifact_hash


def _server_objects(s3_settings, bucket: str, prefix: str) -> list[str]:  # type: ignore[no-untyped-def]
    client = artifact_store.s3_client()
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix)  # type: ignore[attr-defined]
    return [e["Key"] for e in listed.get("Contents", [])]


def test_cached_artifacts_no_active_version_needs_are_evicted(db, s3_settings) -> None:  # type: ignore[no-untyped-def]
    item = ItemFactory(key="transport-protocols")
    add_scored_answers(item)
    first = train_active_version(item)
    answer = SubmissionFactory(item=item, text="tcp")
    assert tasks.score_submissions([str(answer.pk)]) == {str(answer.pk): "scored"}
    cache = Path(s3_settings.ARTIFACT_CACHE_DIR)
    old = cache / first.artifact_hash.removeprefix("sha256:")
    assert old.is_dir()

    second = create_model_version(item, ModelVersion.Kind.HEAD)
    assert tasks.run_training(second, activate=True, examples=training_examples(item)) == "ready"
    second.refresh_from_db()
    assert second.is_active and second.artifact_hash
    answer = SubmissionFactory(item=item, text="udp")
    assert tasks.score_submissions([str(answer.pk)]) == {str(answer.pk): "scored"}
    answer.refresh_from_db()
    assert answer.model_version == second
    engine_host.retire_inactive()
    assert not old.exists()
    assert (cache / second.artifact_hash.removeprefix("sha256:")).is_dir()


def test_moving_the_var_folder_keeps_versions_working(db, scoring_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    item = ItemFactory(key="transport-protocols")
    add_scored_answers(item)
    version = train_active_version(item)
    moved = tmp_path / "elsewhere" / "artifacts"
    moved.parent.mkdir()
    shutil.move(scoring_settings.ARTIFACTS_DIR, moved)
    scoring_settings.ARTIFACTS_DIR = moved
    engine_host.reset()
    answer = SubmissionFactory(item=item, text="tcp udp")
    assert tasks.score_submissions([str(answer.pk)]) == {str(answer.pk): "scored"}
    answer.refresh_from_db()
    assert answer.model_version == version


def test_a_tampered_local_artifact_fails_its_answers(db, scoring_settings) -> None:  # type: ignore[no-untyped-def]
    item = ItemFactory(key="transport-protocols")
    add_scored_answers(item)
    version = train_active_version(item)
    folder = Path(scoring_settings.ARTIFACTS_DIR) / version.artifact_key
    target = next(p for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix != ".md")
    target.write_bytes(target.read_bytes() + b"\0")
    engine_host.reset()
    artifact_store._stores.clear()  # a new worker process
    answer = SubmissionFactory(item=item, text="tcp udp")
    assert tasks.score_submissions([str(answer.pk)]) == {str(answer.pk): "failed"}
    answer.refresh_from_db()
    assert answer.status == Submission.Status.FAILED and "does not match its hash" in answer.error


BEFORE = [("scoring_plugin", "0009_student_feedback")]
AFTER = [("scoring_plugin", "0010_artifact_storage")]


@pytest.mark.django_db(transaction=True)
def test_migration_turns_absolute_paths_into_keys_with_hashes(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings.ARTIFACTS_DIR = tmp_path / "var" / "artifacts"
    present = _artifact(Path(settings.ARTIFACTS_DIR) / "item-a" / "v1-head")
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    Item = old.get_model("scoring_plugin", "Item")
    Version = old.get_model("scoring_plugin", "ModelVersion")
    item = Item.objects.create(key="item-a", prompt="P", max_score=2)
    rows = {
        "present": Version.objects.create(item=item, number=1, artifact_path=str(present)),
        # written when the var folder was somewhere else: its files are here now
        "moved": Version.objects.create(
            item=item, number=2, artifact_path="/old/host/var/artifacts/item-a/v1-head"
        ),
        "gone": Version.objects.create(
            item=item, number=3, artifact_path=str(Path(settings.ARTIFACTS_DIR) / "item-a/v3")
        ),
        "none": Version.objects.create(item=item, number=4, artifact_path=""),
    }
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        new = executor.loader.project_state(AFTER).apps
        after = new.get_model("scoring_plugin", "ModelVersion").objects
        stored = {
            name: after.values("artifact_key", "artifact_hash").get(pk=row.pk)
            for name, row in rows.items()
        }
    finally:
        MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes())
    expected = folder_hash(present)
    assert stored["present"] == {"artifact_key": "item-a/v1-head", "artifact_hash": expected}
    assert stored["moved"] == {"artifact_key": "item-a/v1-head", "artifact_hash": expected}
    assert stored["gone"] == {"artifact_key": "item-a/v3", "artifact_hash": ""}
    assert stored["none"] == {"artifact_key": "", "artifact_hash": ""}


def test_publish_artifacts_uploads_migrated_versions_to_s3(db, s3_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from django.core.management import call_command

    from tests.factories import ModelVersionFactory

    folder = _artifact(Path(s3_settings.ARTIFACTS_DIR) / "item-a" / "v1-head")
    migrated = ModelVersionFactory(artifact_key="item-a/v1-head", artifact_hash="")
    missing = ModelVersionFactory(artifact_key="item-a/v9-head", artifact_hash="")
    call_command("publish_artifacts")
    migrated.refresh_from_db()
    missing.refresh_from_db()
    assert migrated.artifact_hash == folder_hash(folder) and missing.artifact_hash == ""
    shutil.rmtree(s3_settings.ARTIFACTS_DIR)  # another machine: only the store
    artifact_store._stores.clear()
    fetched = artifact_store.version_folder(migrated)
    assert fetched.is_relative_to(Path(s3_settings.ARTIFACT_CACHE_DIR))
    assert folder_hash(fetched) == migrated.artifact_hash
