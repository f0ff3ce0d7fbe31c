"""Erasure and trained artifacts: an ``auto`` version trained on a student's answer holds none of
its text, in the training folder or in the S3 store; an artifact written before that (its
manifest kept a few training answers for the self-check) is redacted, locally or in the store
(stored again with a new hash), and still scores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ml_core.artifact_store import folder_hash
from scoring_plugin import artifact_store
from scoring_plugin.models import ModelVersion
from scoring_plugin.privacy import (
    rehash_redacted_versions,
    scrub_files,
    scrub_stored_artifacts,
)
from scoring_plugin.services import create_model_version, training_examples
from tests.factories import ItemFactory, ScoredAnswerFactory, SubmissionFactory
from tests.scoring.conftest import add_scored_answers
from workers import engine_host, tasks

SECRET = "Zebulon Quartermaine explains that tcp and udp differ"
IDENTIFYING = [SECRET, "zebulon", "quartermaine"]


def _train_auto_with_the_secret(item) -> ModelVersion:  # type: ignore[no-untyped-def]
    ScoredAnswerFactory(item=item, text=SECRET, score=2)  # first by pk: the old self-check's
    add_scored_answers(item, 44)
    examples = training_examples(item)
    assert SECRET in [e.text for e in examples]
    version = create_model_version(item, ModelVersion.Kind.AUTO)
    assert tasks.run_training(version, activate=True, examples=examples) == "ready"
    version.refresh_from_db()
    return version


def _holding(contents: dict[str, bytes]) -> list[str]:
    return sorted(
        name
        for name, data in contents.items()
        if any(n.lower().encode() in data.lower() for n in IDENTIFYING)
    )


def test_an_auto_version_trained_into_s3_holds_no_training_answer_text(db, s3_settings) -> None:  # type: ignore[no-untyped-def]
    item = ItemFactory(key="erase-me")
    version = _train_auto_with_the_secret(item)
    local = Path(s3_settings.ARTIFACTS_DIR) / version.artifact_key
    files = {p.name: p.read_bytes() for p in local.rglob("*") if p.is_file()}
    assert {"manifest.json", "lexical.json", "model_card.json"} <= set(files)
    assert _holding(files) == []

    bucket, _, prefix = s3_settings.ARTIFACT_STORE.removeprefix("s3://").partition("/")
    client = artifact_store.s3_client()
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/{version.artifact_key}/")  # type: ignore[attr-defined]
    keys = [e["Key"] for e in listed.get("Contents", [])]
    stored = {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}  # type: ignore[attr-defined]
    assert {k.rsplit("/", 1)[1] for k in stored} == set(files)
    assert _holding(stored) == []
    # the scan an erasure runs finds nothing to redact either
    assert scrub_files(Path(s3_settings.ARTIFACTS_DIR), IDENTIFYING) == ([], [])


def test_an_older_manifest_holding_an_answer_is_redacted_and_still_scores(
    db, scoring_settings
) -> None:  # type: ignore[no-untyped-def]
    item = ItemFactory(key="erase-me")
    version = _train_auto_with_the_secret(item)
    root = Path(scoring_settings.ARTIFACTS_DIR)
    manifest_path = root / version.artifact_key / "manifest.json"
    # as an artifact trained before the self-check left students' answers out
    manifest = json.loads(manifest_path.read_text())
    manifest["self_check"]["texts"][0] = SECRET
    manifest_path.write_text(json.dumps(manifest))
    ModelVersion.objects.filter(pk=version.pk).update(
        artifact_hash=folder_hash(root / version.artifact_key)
    )

    redacted, unredactable = scrub_files(root, [SECRET])
    assert redacted == [f"{version.artifact_key}/manifest.json"] and not unredactable
    assert rehash_redacted_versions(redacted) == [version.label]
    version.refresh_from_db()
    assert version.artifact_hash == folder_hash(root / version.artifact_key)
    assert SECRET not in manifest_path.read_text()

    engine_host.reset()  # a fresh worker loads the redacted artifact
    answer = SubmissionFactory(item=item, text="tcp udp")
    assert tasks.score_submissions([str(answer.pk)]) == {str(answer.pk): "scored"}


def test_an_older_manifest_in_s3_is_redacted_in_the_store_and_stored_again(db, s3_settings) -> None:  # type: ignore[no-untyped-def]
    item = ItemFactory(key="erase-me")
    version = _train_auto_with_the_secret(item)
    bucket, _, prefix = s3_settings.ARTIFACT_STORE.removeprefix("s3://").partition("/")
    manifest_key = f"{prefix}/{version.artifact_key}/manifest.json"
    client = artifact_store.s3_client()
    # as an artifact trained before the self-check left students' answers out, on another
    # machine: only the store holds it
    manifest = json.loads(client.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())  # type: ignore[attr-defined]
    manifest["self_check"]["texts"][0] = SECRET
    local = Path(s3_settings.ARTIFACTS_DIR) / version.artifact_key
    (local / "manifest.json").write_text(json.dumps(manifest))
    old_hash = folder_hash(local)
    client.put_object(Bucket=bucket, Key=manifest_key, Body=(local / "manifest.json").read_bytes())  # type: ignore[attr-defined]
    ModelVersion.objects.filter(pk=version.pk).update(artifact_hash=old_hash)
    shutil.rmtree(s3_settings.ARTIFACTS_DIR)
    engine_host.reset()

    redacted, unredactable = scrub_stored_artifacts([SECRET, "Zebulon"])
    assert redacted == [f"s3:{version.artifact_key}/manifest.json"] and unredactable == []
    stored = client.get_object(Bucket=bucket, Key=manifest_key)["Body"].read().decode()  # type: ignore[attr-defined]
    assert SECRET not in stored and "[erased]" in stored
    version.refresh_from_db()
    assert version.artifact_hash != old_hash
    # this machine's cached copy of the old content is gone; the new one is fetched and scores
    cache = Path(s3_settings.ARTIFACT_CACHE_DIR)
    assert not (cache / old_hash.removeprefix("sha256:")).exists()
    answer = SubmissionFactory(item=item, text="tcp udp")
    assert tasks.score_submissions([str(answer.pk)]) == {str(answer.pk): "scored"}
    assert (cache / version.artifact_hash.removeprefix("sha256:")).is_dir()
    # a second erasure finds nothing left
    assert scrub_stored_artifacts([SECRET, "Zebulon"]) == ([], [])
