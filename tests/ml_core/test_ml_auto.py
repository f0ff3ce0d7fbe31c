"""The ``auto`` kind: artifact round trip, ordinal decoding, calibration, review threshold."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from ml_core.artifact import load_artifact
from ml_core.auto import (
    AutoConfig,
    AutoModel,
    agreement_curve,
    apply_temperature,
    decode_with_cuts,
    fit_temperature,
    review_threshold_for,
    train_auto,
    tune_cut_points,
)
from ml_core.crossval import expected_calibration_error
from ml_core.evaluation import evaluate_artifact
from ml_core.metrics import quadratic_weighted_kappa
from ml_core.training import TrainExample, TrainingCancelled
from tests.ml_core.conftest import _WORDS, make_examples


def toy_embed(texts: Sequence[str]) -> np.ndarray:
    """A deterministic stand-in for the backbone: word counts plus a fixed offset (not unit)."""
    vectors = np.zeros((len(texts), len(_WORDS) + 1), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.split():
            if word in _WORDS:
                vectors[row, _WORDS.index(word)] += 1.0
        vectors[row, -1] = 3.0
    return vectors


def noisy_examples(n: int, seed: int, noise: float = 0.15) -> list[TrainExample]:
    """Key-word answers whose human score is off by one for a share ``noise`` of them."""
    rng = random.Random(seed)
    out = []
    for example in make_examples(n, seed=seed):
        label = example.label
        if rng.random() < noise:
            label = min(2, max(0, label + rng.choice((-1, 1))))
        out.append(TrainExample(example.text, label))
    return out


def test_auto_artifact_round_trips_to_the_training_time_predictions(tmp_path: Path) -> None:
    examples = noisy_examples(90, seed=3)
    trained = train_auto(
        examples, 3, tmp_path / "v1", backbone=None, config=AutoConfig(seed=5), embed=toy_embed
    )
    assert trained.kind == "auto" and trained.size_bytes > 0
    manifest = json.loads((tmp_path / "v1" / "manifest.json").read_text())
    assert manifest["kind"] == "auto" and manifest["labels"] == [0, 1, 2]
    assert manifest["backbone_fingerprint"] and manifest["pooling"] == "mean"
    for key in ("qwk", "qwk_ci_low", "qwk_ci_high", "ece", "review_threshold"):
        assert key in manifest["metrics"]
    assert manifest["agreement_curve"][0]["threshold"] == 0.0
    assert not list((tmp_path / "v1").glob("*.pkl"))

    model = AutoModel.load(tmp_path / "v1")
    # the stored weights reproduce what the fitted model computed at training time
    assert model.self_check(toy_embed) < 1e-4
    texts = [e.text for e in make_examples(30, seed=11)]
    embeddings = toy_embed(texts) if model.needs_embeddings else None
    probabilities = model.probabilities(texts, embeddings)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    again = AutoModel.load(tmp_path / "v1").probabilities(texts, embeddings)
    np.testing.assert_array_equal(probabilities, again)
    scores = model.decode(probabilities)
    assert scores.dtype == np.int64 and set(scores.tolist()) <= {0, 1, 2}
    # the artifact folder is also readable by the generic loader and the evaluation helpers
    assert load_artifact(tmp_path / "v1").kind == "auto"


def test_lexical_only_artifact_needs_no_embeddings(tmp_path: Path) -> None:
    def refuse(texts: Sequence[str]) -> np.ndarray:
        raise AssertionError("a lexical-only auto model must not embed")

    train_auto(
        make_examples(90),
        3,
        tmp_path / "lex",
        config=AutoConfig(candidates=("lexical",)),
        embed=refuse,
    )
    model = AutoModel.load(tmp_path / "lex")
    assert model.needs_embeddings is False
    test = make_examples(30, seed=4)
    scores = model.decode(model.probabilities([e.text for e in test], None))
    assert quadratic_weighted_kappa([e.label for e in test], scores, 3) > 0.8
    assert evaluate_artifact(tmp_path / "lex", test)["qwk"] == pytest.approx(
        quadratic_weighted_kappa([e.label for e in test], scores, 3)
    )


def test_neural_candidate_refuses_missing_embeddings(tmp_path: Path) -> None:
    train_auto(
        make_examples(60),
        3,
        tmp_path / "emb",
        config=AutoConfig(candidates=("embedding",)),
        embed=toy_embed,
    )
    model = AutoModel.load(tmp_path / "emb")
    assert model.needs_embeddings is True
    with pytest.raises(ValueError, match="embeddings"):
        model.probabilities(["tcp udp"], None)


def test_cancelled_training_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(TrainingCancelled):
        train_auto(
            make_examples(30), 3, tmp_path / "x", embed=toy_embed, should_cancel=lambda: True
        )
    assert not (tmp_path / "x").exists()


def test_cut_points_beat_or_equal_argmax_on_an_ordinal_case() -> None:
    # a model that spreads the middle class's mass to both neighbours: argmax never says 1
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=300)
    probabilities = np.zeros((300, 3))
    for row, label in enumerate(labels):
        if label == 1:
            probabilities[row] = [0.4, 0.2, 0.4] + rng.normal(0, 0.03, 3)
        else:
            probabilities[row, label] = 0.7
            probabilities[row, 1] = 0.1
            probabilities[row, 2 - label] = 0.2
    probabilities = np.clip(probabilities, 0.01, None)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    argmax_qwk = quadratic_weighted_kappa(labels, probabilities.argmax(axis=1), 3)
    cuts = tune_cut_points(probabilities, labels, 3)
    tuned_qwk = quadratic_weighted_kappa(labels, decode_with_cuts(probabilities, cuts), 3)
    assert tuned_qwk >= argmax_qwk
    assert tuned_qwk > argmax_qwk + 0.1  # here the middle class becomes reachable
    assert list(cuts) == sorted(cuts)


def test_temperature_reduces_the_calibration_error_of_an_overconfident_model() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 1.0, size=(2000, 3))
    true_p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(3, p=p) for p in true_p])
    overconfident = np.exp(3 * logits) / np.exp(3 * logits).sum(axis=1, keepdims=True)

    def ece(p: np.ndarray) -> float:
        predicted = p.argmax(axis=1)
        return expected_calibration_error(p.max(axis=1), predicted == labels)

    temperature = fit_temperature(overconfident, labels)
    assert temperature > 2
    assert ece(apply_temperature(overconfident, temperature)) < ece(overconfident) / 2


def test_review_threshold_is_the_lowest_reaching_the_target_agreement() -> None:
    rng = np.random.default_rng(2)
    confidence = rng.uniform(0.3, 1.0, 1000)
    correct = rng.uniform(size=1000) < confidence  # calibrated: higher confidence, more right
    curve = agreement_curve(confidence, correct, step=0.05)
    threshold = review_threshold_for(curve, 0.9)
    posted = confidence >= threshold
    assert correct[posted].mean() >= 0.9
    lower = confidence >= threshold - 0.05
    assert correct[lower].mean() < 0.9
    assert review_threshold_for(curve, 1.01) > 1.0  # unreachable: everything is reviewed


def test_review_threshold_meets_the_target_on_out_of_fold_answers(tmp_path: Path) -> None:
    train_auto(
        noisy_examples(150, seed=8, noise=0.2),
        3,
        tmp_path / "v",
        config=AutoConfig(target_agreement=0.9),
        embed=toy_embed,
    )
    model = AutoModel.load(tmp_path / "v")
    curve = model.agreement_curve
    assert curve[0]["auto_fraction"] == 1.0
    fractions = [p["auto_fraction"] for p in curve]
    assert fractions == sorted(fractions, reverse=True)
    metrics = model.metrics
    if model.review_threshold <= 1.0:
        assert metrics["agreement_at_threshold"] >= 0.9
        point = next(p for p in curve if p["threshold"] == model.review_threshold)
        assert point["auto_fraction"] == pytest.approx(metrics["auto_fraction_at_threshold"])
    earlier = [p for p in curve if p["threshold"] < model.review_threshold and p["auto_fraction"]]
    assert all(p["agreement"] < 0.9 for p in earlier)


def test_engine_refuses_an_auto_artifact_with_a_clear_error(
    tiny_backbone: Path, tmp_path: Path
) -> None:
    from ml_core.artifact import ArtifactError
    from ml_core.engine import ScoringEngine

    train_auto(make_examples(30), 3, tmp_path / "a", backbone=str(tiny_backbone), embed=toy_embed)
    engine = ScoringEngine(str(tiny_backbone))
    with pytest.raises(ArtifactError, match="AutoModel"):
        engine.load_item("q", tmp_path / "a", "v1")


def test_manifest_keeps_out_of_fold_predictions_per_answer_without_text(tmp_path: Path) -> None:
    examples = noisy_examples(90, seed=4)
    train_auto(
        examples,
        3,
        tmp_path / "v",
        config=AutoConfig(seed=2),
        embed=toy_embed,
        reference_answers=["alpha beta gamma"],
    )
    manifest = json.loads((tmp_path / "v" / "manifest.json").read_text())
    oof = manifest["out_of_fold"]
    # one entry per training answer, in order; the reference answer is not among them
    assert oof["scores"] == [e.label for e in examples]
    assert oof["words"] == [len(e.text.split()) for e in examples]
    assert len(oof["predicted"]) == len(oof["confidence"]) == len(examples)
    assert all(0.0 <= c <= 1.0 for c in oof["confidence"])
    # the stored predictions are the ones the cross-validated accuracy was computed from
    agree = sum(p == s for p, s in zip(oof["predicted"], oof["scores"], strict=True))
    assert agree / len(examples) == pytest.approx(manifest["metrics"]["accuracy"], abs=0.02)
    assert "out_of_fold" in manifest and examples[0].text not in json.dumps(oof)


_KEY_WORDS = "chlorophyll sunlight glucose oxygen carbon water stomata energy".split()
_FILLER = "plants grow green leaves because they need something from the world".split()


def coverage_examples(n: int, seed: int) -> list[TrainExample]:
    """Eight-word answers; score = how many of the reference's first four key words an answer
    holds (0-1, 2, 3-4); the last four key words never occur in training answers."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        count = i % 5
        words = rng.sample(_FILLER, 8 - count) + rng.sample(_KEY_WORDS[:4], count)
        rng.shuffle(words)
        out.append(TrainExample(" ".join(words), 0 if count < 2 else 1 if count == 2 else 2))
    return out


def test_reference_answer_raises_the_score_of_answers_that_cover_it(tmp_path: Path) -> None:
    examples = coverage_examples(100, seed=2)
    reference = "Plants use " + ", ".join(_KEY_WORDS) + "."
    config = AutoConfig(candidates=("lexical",), decoders=("argmax",))
    train_auto(examples, 3, tmp_path / "ref", config=config, reference_answers=[reference])
    train_auto(examples, 3, tmp_path / "plain", config=config)
    with_reference = AutoModel.load(tmp_path / "ref")
    without = AutoModel.load(tmp_path / "plain")
    assert "reference_coverage" in with_reference.manifest["auto"]["features"]  # type: ignore[index]
    assert "reference_coverage" not in without.manifest["auto"]["features"]  # type: ignore[index]
    # key words of the reference that no training answer used: only the reference tells
    answer = "plants need " + " ".join(_KEY_WORDS[4:]) + " from the"
    levels = np.arange(3)
    raised = with_reference.probabilities([answer], None) @ levels
    plain = without.probabilities([answer], None) @ levels
    assert raised[0] > plain[0] + 0.3
    # the same holds for what the model serves, and the model still needs no backbone
    assert with_reference.needs_embeddings is False
    assert with_reference.decode(with_reference.probabilities([answer], None))[0] >= 1
    assert with_reference.self_check() < 1e-4


def test_reference_features_with_vectors_round_trip(tmp_path: Path) -> None:
    examples = noisy_examples(90, seed=7)
    config = AutoConfig(seed=3, c_scales=(0.25, 1.0, 4.0))
    train_auto(
        examples,
        3,
        tmp_path / "v",
        config=config,
        reference_answers=["tcp udp header", "  "],
        embed=toy_embed,
    )
    model = AutoModel.load(tmp_path / "v")
    auto = model.manifest["auto"]
    assert auto["features"] == [  # type: ignore[index]
        "log_words",
        "vector_cosine",
        "tfidf_similarity",
        "reference_coverage",
    ]
    assert auto["feature_references"] == ["tcp udp header"]  # type: ignore[index]
    # every candidate was tried at every C of the grid; the chosen C is one of them
    assert set(auto["c"]) <= {1.0, 4.0, 16.0}  # type: ignore[index]
    labels = list(auto["inner_cv_qwk_by_candidate"])  # type: ignore[index]
    assert sum(label.startswith("joint[") for label in labels) == 3
    # the vector cosine to the reference is a feature: serving needs the vectors
    assert model.needs_embeddings is True
    assert model.self_check(toy_embed) < 1e-4
    with pytest.raises(ValueError, match="embeddings"):
        model.probabilities(["tcp udp"], None)
    texts = [e.text for e in make_examples(20, seed=9)]
    np.testing.assert_allclose(model.probabilities(texts, toy_embed(texts)).sum(axis=1), 1.0)


def _files_text(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*"))


def test_no_training_answer_or_single_answer_word_is_written_to_the_artifact(
    tmp_path: Path,
) -> None:
    examples = noisy_examples(60, seed=6)
    # one student signs an answer with a name that no other answer holds
    signed = TrainExample(examples[0].text + " signed Wojciechowska", examples[0].label)
    examples = [signed, *examples[1:]]
    reference = "tcp and udp differ in the header"
    train_auto(
        examples,
        3,
        tmp_path / "v",
        config=AutoConfig(seed=2, candidates=("lexical", "joint")),
        embed=toy_embed,
        reference_answers=[reference],
    )
    stored = _files_text(tmp_path / "v")
    assert "wojciechowska" not in stored.lower() and "ciecho" not in stored.lower()
    assert not [e.text for e in examples if e.text in stored]
    model = AutoModel.load(tmp_path / "v")
    # the self-check runs on the reference answer and fixed sentences, and still holds
    check_texts = model.manifest["self_check"]["texts"]  # type: ignore[index]
    assert check_texts[0] == reference and len(check_texts) == 4
    assert model.self_check(toy_embed) < 1e-4


def test_figures_count_the_students_answers_not_the_reference_added_as_one(
    tmp_path: Path,
) -> None:
    examples = noisy_examples(60, seed=7)
    train_auto(
        examples,
        3,
        tmp_path / "v",
        config=AutoConfig(seed=2, reference_as_answer=True),
        embed=toy_embed,
        reference_answers=["tcp udp header port", "tcp udp checksum"],
    )
    manifest = json.loads((tmp_path / "v" / "manifest.json").read_text())
    assert manifest["metrics"]["n_train"] == len(examples)
    oof = manifest["out_of_fold"]
    agree = sum(p == s for p, s in zip(oof["predicted"], oof["scores"], strict=True))
    assert manifest["metrics"]["accuracy"] == pytest.approx(agree / len(examples))
