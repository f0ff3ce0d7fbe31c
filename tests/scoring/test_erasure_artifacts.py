"""Erasure reaches a trained model's artifact: an ``auto`` manifest keeps a few training answers
for its self-check; redacting them must not leave the version unloadable."""

from __future__ import annotations

from pathlib import Path

from ml_core.artifact_store import folder_hash
from scoring_plugin.models import ModelVersion
from scoring_plugin.privacy import rehash_redacted_versions, scrub_files
from scoring_plugin.services import create_model_version, training_examples
from tests.factories import ItemFactory, ScoredAnswerFactory, SubmissionFactory
from tests.scoring.conftest import add_scored_answers
from workers import engine_host, tasks

SECRET = "Zebulon Quartermaine explains that tcp and udp differ"


def test_an_erased_training_answer_leaves_the_auto_version_scoring(db, scoring_settings) -> None:  # type: ignore[no-untyped-def]
    item = ItemFactory(key="erase-me")
    ScoredAnswerFactory(item=item, text=SECRET, score=2)  # first by pk: in the self-check
    add_scored_answers(item, 44)
    version = create_model_version(item, ModelVersion.Kind.AUTO)
    assert tasks.run_training(version, activate=True, examples=training_examples(item)) == "ready"
    version.refresh_from_db()
    root = Path(scoring_settings.ARTIFACTS_DIR)
    assert SECRET in (root / version.artifact_key / "manifest.json").read_text()

    redacted, unredactable = scrub_files(root, [SECRET])
    assert f"{version.artifact_key}/manifest.json" in redacted and not unredactable
    assert rehash_redacted_versions(redacted) == [version.label]
    version.refresh_from_db()
    assert version.artifact_hash == folder_hash(root / version.artifact_key)
    assert SECRET not in (root / version.artifact_key / "manifest.json").read_text()

    engine_host.reset()  # a fresh worker loads the redacted artifact
    answer = SubmissionFactory(item=item, text="tcp udp")
    assert tasks.score_submissions([str(answer.pk)]) == {str(answer.pk): "scored"}
