"""Erasure and trained artifacts: an ``auto`` version trained on a student's answer holds none of
its text, in the training folder or in the S3 store; an artifact written before that (its
manifest kept a few training answers for the self-check) is redacted and still loads."""

from __future__ import annotations

import json
from pathlib import Path

from ml_core.artifact_store import folder_hash
from scoring_plugin import artifact_store
from scoring_plugin.models import ModelVersion
from scoring_plugin.privacy import rehash_redacted_versions, scrub_files
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
