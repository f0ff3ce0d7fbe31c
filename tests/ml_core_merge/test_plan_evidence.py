"""What the plan comparison rests on: label-aware GW, the pretrained-feature baseline, validation
metrics, and the benchmark script end to end (train once, reuse, refuse other data settings)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ml_core.artifact import load_artifact
from ml_core.merge.config import DistanceConfig, FeatureConfig, MergeConfig
from ml_core.merge.distances import cached_matrix, gw_distance, gw_matrix
from ml_core.merge.models import Encoder
from ml_core.merge.pipeline import (
    merge_group,
    pooled_report,
    prepare_item,
    pretrained_features,
    sample_scores,
)
from ml_core.training import TrainExample
from tests.ml_core_merge.conftest import toy_examples

ROOT = Path(__file__).resolve().parents[2]


def test_label_aware_gw_tells_apart_sets_whose_scores_are_arranged_differently() -> None:
    rng = np.random.default_rng(0)
    features = rng.standard_normal((30, 8))
    scores = (features[:, 0] > 0).astype(float)  # the score follows one direction
    shuffled = rng.permutation(scores)  # same features and score counts, scores unrelated
    plain = DistanceConfig()
    aware = DistanceConfig(label_weight=0.5)
    assert gw_distance(features, features, plain) == pytest.approx(0.0, abs=1e-6)
    with_scores = gw_matrix({"a": features, "b": features}, aware, {"a": scores, "b": shuffled})
    same_scores = gw_matrix({"a": features, "b": features}, aware, {"a": scores, "b": scores})
    assert with_scores.values[0, 1] > 10 * max(same_scores.values[0, 1], 1e-6)
    assert gw_matrix({"a": features, "b": features}, plain, {"a": scores, "b": shuffled}).values[
        0, 1
    ] == pytest.approx(0.0, abs=1e-6)  # weight 0: scores ignored
    with pytest.raises(ValueError, match="label_weight"):
        DistanceConfig(label_weight=1.5).validate()


def test_cache_tells_label_aware_and_plain_matrices_apart(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    features = {"a": rng.standard_normal((12, 4)), "b": rng.standard_normal((12, 4))}
    scores = {"a": rng.random(12), "b": rng.random(12)}
    hashes = {"a": "1", "b": "2"}
    plain, _ = cached_matrix("gw", features, hashes, tmp_path)
    aware, hit = cached_matrix(
        "gw", features, hashes, tmp_path, config=DistanceConfig(label_weight=0.5), labels=scores
    )
    assert not hit and aware.values[0, 1] != plain.values[0, 1]
    assert cached_matrix(
        "gw", features, hashes, tmp_path, config=DistanceConfig(label_weight=0.5), labels=scores
    )[1]


def test_pretrained_features_scores_and_validation_metrics(
    full_items: dict[str, tuple[Path, list[TrainExample]]], tiny_backbone: Path, tmp_path: Path
) -> None:
    encoder = Encoder(str(tiny_backbone))
    items = [prepare_item(load_artifact(p), ex, encoder) for p, ex in full_items.values()]
    config = FeatureConfig(max_answers=10)
    shared, _ = pretrained_features(items, encoder, config)
    assert {k: v.shape for k, v in shared.items()} == {i.item_id: (10, 32) for i in items}
    scores = sample_scores(items, config)
    assert all(0.0 <= v.min() and v.max() <= 1.0 for v in scores.values())
    result = merge_group(
        items[:2], encoder, tmp_path / "g", group_id="g", config=MergeConfig(), backbone_label="t"
    )
    val = {i.item_id: result.predictions(i, i.split.val) for i in items[:2]}
    report = pooled_report(items[:2], val, "val")
    assert report["n_test"] == sum(len(i.split.val) for i in items[:2]) > 0


def _bank(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    items, responses = folder / "items.csv", folder / "responses.csv"
    with items.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "language", "prompt", "reference_answer", "max_score"])
        for key in ("t-1", "t-2", "t-3", "t-4"):
            writer.writerow([key, "en", "Name the protocols.", "tcp udp", 2])
    with responses.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "response_id", "text", "score", "split"])
        for number, key in enumerate(("t-1", "t-2", "t-3", "t-4")):
            keywords = ("tcp", "udp") if number < 2 else ("router", "switch")
            for row, example in enumerate(toy_examples(40, seed=number, keywords=keywords)):
                writer.writerow([key, f"{key}-{row}", example.text, example.label, example.split])
    return items, responses


def test_benchmark_script_reports_plans_against_random_and_reuses_models(
    tiny_backbone: Path, tmp_path: Path
) -> None:
    items, responses = _bank(tmp_path / "bank")
    models = tmp_path / "models"
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "merge_benchmark.py"),
        "--responses",
        str(responses),
        "--items",
        str(items),
        "--backbone",
        str(tiny_backbone),
        "--max-length",
        "64",
        "--models-dir",
        str(models),
        "--epochs",
        "1",
        "--group-size",
        "2",
        "--random-plans",
        "2",
        "--feature-answers",
        "12",
        "--methods",
        "ties",
        "--device",
        "cpu",
    ]
    # one thread: torch's thread pool spinning on two busy cores makes tiny models 10x slower
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    first = subprocess.run(
        [*command, "--out", str(tmp_path / "out1")],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert sorted(p.name for p in models.iterdir()) == [
        "benchmark-data.json",
        "t-1",
        "t-2",
        "t-3",
        "t-4",
    ]
    report = json.loads((tmp_path / "out1" / "report.json").read_text())
    assert {f"{p}/ties" for p in ("gw", "gw-labels", "centroid-pretrained", "random-1")} <= set(
        report["merged"]
    )
    assert report["selection"]["val_selected"].endswith("/ties")
    assert report["selection"]["random_test_micro_f1_std"] is not None
    assert report["selection"]["cv_selected"].endswith("/ties")
    assert 0.0 < report["merged"]["gw/ties"]["cv_accuracy"] <= 1.0
    assert "random plans: mean" in (tmp_path / "out1" / "report.md").read_text()
    # a second run trains nothing; other data settings are refused
    second = subprocess.run(
        [*command, "--out", str(tmp_path / "out2")],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert second.returncode == 0 and "[train" not in second.stdout
    refused = subprocess.run(
        [*command, "--out", str(tmp_path / "out3"), "--max-train-per-item", "10"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert refused.returncode != 0 and "was trained with" in refused.stderr


def test_cross_validated_head_accuracy_prefers_features_that_carry_the_score() -> None:
    import torch

    from ml_core.merge.heads import cross_validated_correct

    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 90)
    informative = rng.standard_normal((90, 6)).astype(np.float32)
    informative[:, 0] += 4.0 * labels  # the score is readable from the features
    noise = rng.standard_normal((90, 6)).astype(np.float32)
    start = (torch.zeros(3, 6), torch.zeros(3))
    good = cross_validated_correct(informative, labels, *start)
    bad = cross_validated_correct(noise, labels, *start)
    assert good > 0.8 * 90 and bad < 0.5 * 90
    assert cross_validated_correct(noise[:3], labels[:3], *start) == 0  # fewer than 5 answers
