"""Every trained version gets a gaming check and a model card (JSON and Markdown, in its artifact
folder and in admin); a setting keeps a gameable version from being active."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from scoring_plugin import audit
from scoring_plugin.artifact_store import version_folder
from scoring_plugin.model_cards import build_card, card_markdown
from scoring_plugin.models import AuditLog, Item, ModelVersion
from tests.factories import SubmissionFactory, UserFactory
from tests.scoring.conftest import train_active_version

ATTACKS = [
    "prompt_copy",
    "key_terms",
    "shuffled",
    "gibberish",
    "padded",
    "other_language",
    "invisible",
]


def test_training_stores_a_gaming_check_and_writes_the_model_card(trained_item: Item) -> None:
    version = trained_item.active_version
    assert version is not None
    gaming = version.metrics["gaming"]
    assert [a["attack"] for a in gaming["attacks"]] == ATTACKS
    assert all(a["answers"] == 20 for a in gaming["attacks"])
    assert gaming["worst_credit_rate"] == max(a["credit_rate"] or 0 for a in gaming["attacks"])
    by_attack = {a["attack"]: a for a in gaming["attacks"]}
    assert by_attack["invisible"]["flagged_rate"] == 1.0
    # Answers padded to the length limit run past the tiny test backbone's 128 positions:
    # they are cut to the backbone's window and scored, as any long answer is (they failed
    # before the engine knew the backbone's position limit).
    assert by_attack["padded"]["errors"] == 0 and by_attack["padded"]["credit_rate"] is not None
    assert by_attack["gibberish"]["errors"] == 0

    folder = version_folder(version)
    card = json.loads((folder / "model_card.json").read_text())
    assert card["model_version"] == "transport-protocols@v1"
    assert card["data"]["by_score"] == {"0": 15, "1": 15, "2": 15}
    assert card["data"]["scored_by"] == {"import": 45}
    assert card["training_config"]["backbone_fingerprint"]
    assert card["training_config"]["config"]["kind"] == "head"
    evaluation = card["evaluation"]
    low, high = evaluation["accuracy_ci95"]
    assert low <= evaluation["accuracy"] <= high and evaluation["n_test"] > 0
    assert card["gaming_check"] == gaming
    markdown = (folder / "model_card.md").read_text()
    assert "## Gaming check" in markdown and "| key_terms | 20 |" in markdown
    assert "No reviews yet" in markdown


def test_reviews_add_calibration_and_the_automation_curve(trained_item: Item) -> None:
    version = trained_item.active_version
    for i, (auto, human, confidence) in enumerate(
        [(2, 2, 0.95), (1, 1, 0.85), (0, 1, 0.55), (2, 1, 0.65), (0, 0, 0.9)]
    ):
        SubmissionFactory(
            item=trained_item,
            text=" ".join(["tcp"] * (5 + 10 * i)),
            status="scored",
            score=auto,
            confidence=confidence,
            reviewed_score=human,
            model_version=version,
        )
    card = build_card(version)  # type: ignore[arg-type]
    reviews = card["instructor_reviews"]
    assert reviews["reviewed_answers"] == 5 and reviews["accuracy"] == 0.6
    curve = {p["threshold"]: p for p in reviews["agreement_vs_automation"]}
    assert curve[0.0] == {"threshold": 0.0, "automated_share": 1.0, "agreement": 0.6}
    assert curve[0.8] == {"threshold": 0.8, "automated_share": 0.6, "agreement": 1.0}
    assert sum(b["answers"] for b in reviews["calibration"]) == 5
    assert [b["band"] for b in reviews["by_length_band"]] == [
        "1-10 words",
        "11-30 words",
        "over 30 words",
    ]
    assert "Agreement versus automation" in card_markdown(card)
    assert "tcp tcp" not in json.dumps(card)  # counts only, never answers


def test_admin_shows_the_card_and_offers_downloads(trained_item: Item) -> None:
    version = trained_item.active_version
    assert version is not None
    web = Client()
    web.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    page = web.get(f"/admin/scoring_plugin/modelversion/{version.pk}/change/")
    assert page.status_code == 200
    assert 'id="model-card"' in page.content.decode()
    md = web.get(f"/admin/scoring_plugin/modelversion/{version.pk}/model-card.md")
    assert md.status_code == 200 and md.content.decode().startswith("# Model card")
    js = web.get(f"/admin/scoring_plugin/modelversion/{version.pk}/model-card.json")
    assert json.loads(js.content)["model_version"] == version.label


def test_a_version_above_the_gaming_limit_is_not_left_active(trained_item: Item, settings) -> None:
    first = trained_item.active_version
    settings.SCOREBRIDGE_GAMING_MAX_CREDIT_RATE = 0.0
    second = train_active_version(trained_item)
    assert second.metrics["gaming"]["worst_credit_rate"] > 0.0
    assert not second.is_active
    assert ModelVersion.objects.get(pk=first.pk).is_active  # type: ignore[union-attr]
    blocked = AuditLog.objects.get(actor="system:gaming-check", details__blocked=second.label)
    assert blocked.details["limit"] == 0.0
    with pytest.raises(ValidationError, match="gaming answers earn credit"):
        audit.activate(second, "admin:someone")


def test_command_writes_cards_and_the_gaming_summary(trained_item: Item, tmp_path: Path) -> None:
    from django.core.management import call_command

    version = trained_item.active_version
    assert version is not None
    # A version trained before the hook existed: the command runs its gaming check.
    ModelVersion.objects.filter(pk=version.pk).update(
        metrics={k: v for k, v in version.metrics.items() if k != "gaming"}
    )
    call_command("model_cards", "--out", str(tmp_path), "--check")
    card = json.loads((tmp_path / "transport-protocols-v1.json").read_text())
    assert [a["attack"] for a in card["gaming_check"]["attacks"]] == ATTACKS
    readme = (tmp_path / "README.md").read_text()
    assert "| key_terms |" in readme and "of 1 |" in readme
    assert (tmp_path / "transport-protocols-v1.md").read_text().startswith("# Model card")


def test_the_card_is_stored_in_s3_beside_the_model_and_travels_with_it(db, s3_settings) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from scoring_plugin import artifact_store
    from tests.factories import ItemFactory
    from tests.scoring.conftest import add_scored_answers

    item = ItemFactory(key="transport-protocols")
    add_scored_answers(item)
    version = train_active_version(item)
    bucket, prefix = s3_settings.ARTIFACT_STORE.removeprefix("s3://").split("/", 1)
    listed = artifact_store.s3_client().list_objects_v2(Bucket=bucket, Prefix=prefix)  # type: ignore[attr-defined]
    names = {e["Key"].rsplit("/", 1)[-1] for e in listed["Contents"]}
    assert {"model_card.json", "model_card.md", "manifest.json"} <= names

    # another machine: no training folder, an empty cache, a fresh store
    shutil.rmtree(s3_settings.ARTIFACTS_DIR)
    shutil.rmtree(s3_settings.ARTIFACT_CACHE_DIR)
    artifact_store._stores.clear()
    folder = version_folder(version)
    card = json.loads((folder / "model_card.json").read_text())
    assert card["model_version"] == version.label and card["gaming_check"]["attacks"]
    web = Client()
    web.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    md = web.get(f"/admin/scoring_plugin/modelversion/{version.pk}/model-card.md")
    assert md.status_code == 200 and md.content.decode().startswith("# Model card")
