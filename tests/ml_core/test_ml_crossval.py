"""Cross-validation folds, interval statistics, the TF-IDF baseline and its numpy twin."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion

from ml_core.baseline import TfidfBaseline, baseline_features
from ml_core.crossval import (
    ItemData,
    expected_calibration_error,
    folds_for,
    paired_comparison,
    run_folds,
    stratified_folds,
    t_interval,
)
from ml_core.lexical import LexicalVectorizer, linear_logits
from ml_core.metrics import quadratic_weighted_kappa
from ml_core.quality import baseline_method
from tests.ml_core.conftest import make_examples


def test_folds_are_disjoint_cover_every_answer_and_are_stratified() -> None:
    # 50 / 30 / 3 answers per class: the last class has fewer members than folds
    labels = [0] * 50 + [1] * 30 + [2] * 3
    folds = stratified_folds(labels, folds=5, repeats=2, seed=7)
    assert len(folds) == 10
    for repeat in (0, 1):
        tests = [set(f.test) for f in folds if f.repeat == repeat]
        assert sum(len(t) for t in tests) == len(labels)
        assert set().union(*tests) == set(range(len(labels)))
        for fold in (f for f in folds if f.repeat == repeat):
            assert set(fold.train) | set(fold.test) == set(range(len(labels)))
            assert not set(fold.train) & set(fold.test)
            counts = np.bincount([labels[i] for i in fold.test], minlength=3)
            assert counts[0] == 10 and counts[1] == 6  # exactly the class shares
            assert counts[2] <= 1  # the rare class is spread over different folds
    first = [f.test for f in folds if f.repeat == 0]
    second = [f.test for f in folds if f.repeat == 1]
    assert first != second  # repeats reshuffle
    assert stratified_folds(labels, folds=5, repeats=2, seed=7) == folds  # seeded


def test_fewer_answers_than_folds_gives_one_fold_per_answer() -> None:
    folds = stratified_folds([0, 1, 1], folds=5, repeats=1)
    assert sorted(len(f.test) for f in folds) == [1, 1, 1]


def test_split_mode_uses_the_datas_test_answers() -> None:
    examples = make_examples(10, split="train")[:7] + make_examples(3, split="test")
    (fold,) = folds_for(examples, "split", folds=5, repeats=2, seed=0)
    assert fold.test == (7, 8, 9) and fold.train == tuple(range(7))


def test_t_interval_and_paired_comparison() -> None:
    interval = t_interval([0.5, 0.6, 0.7])
    assert interval.mean == pytest.approx(0.6)
    assert interval.low < 0.6 < interval.high
    better = paired_comparison([0.8, 0.7, 0.9, 0.75, 0.85, 0.8], [0.6, 0.5, 0.7, 0.6, 0.65, 0.7])
    assert better.mean_difference > 0 and better.wins == 6 and better.losses == 0
    assert better.t_p_value < 0.05 and better.wilcoxon_p_value < 0.05


def test_ece_is_zero_when_confidence_matches_accuracy() -> None:
    confidence = np.full(100, 0.7)
    correct = np.arange(100) < 70
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.0)
    assert expected_calibration_error(np.full(100, 0.99), correct) == pytest.approx(0.29)


def test_numpy_vectorizer_matches_scikit_learn_and_survives_storage() -> None:
    texts = [e.text for e in make_examples(30)]
    texts += ["TCP's  header, ä ö ü!", "a", "tcp\tudp\n\nport  İstanbul\u00a0HEADER"]
    reference = baseline_features().fit(texts[:20])
    ours = LexicalVectorizer().fit(texts[:20])
    expected = reference.transform(texts).toarray()
    got = ours.transform(texts).to_scipy().toarray()  # type: ignore[attr-defined]
    np.testing.assert_allclose(got, expected, atol=1e-12)
    # again, with every word's character n-grams already looked up (kept per word)
    again = ours.transform(texts[::-1]).to_scipy().toarray()  # type: ignore[attr-defined]
    np.testing.assert_allclose(again, expected[::-1], atol=1e-12)
    description, arrays = ours.state()
    restored = LexicalVectorizer.from_state(description, arrays)
    np.testing.assert_allclose(
        restored.transform(texts).to_scipy().toarray(),  # type: ignore[attr-defined]
        expected,
        atol=1e-6,  # idf stored as float32
    )
    assert isinstance(reference, FeatureUnion)
    word = reference.transformer_list[0][1]
    assert isinstance(word, TfidfVectorizer) and word.ngram_range == (1, 2)


def test_linear_logits_equal_dense_product() -> None:
    rows = LexicalVectorizer().fit_transform(["tcp udp", "udp port", "tcp"])
    coef = np.random.default_rng(0).normal(size=(3, rows.width))
    dense = rows.to_scipy().toarray()  # type: ignore[attr-defined]
    np.testing.assert_allclose(linear_logits(rows, coef, np.ones(3)), dense @ coef.T + 1)


def test_baseline_trains_and_predicts_key_terms() -> None:
    train, test = make_examples(90, seed=0), make_examples(30, seed=1)
    model = TfidfBaseline(3).fit([e.text for e in train], [e.label for e in train])
    probabilities = model.predict_proba([e.text for e in test])
    assert probabilities.shape == (30, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    truth = [e.label for e in test]
    assert quadratic_weighted_kappa(truth, model.predict([e.text for e in test]), 3) > 0.8


def test_baseline_with_an_absent_class_gives_it_no_probability() -> None:
    train = [e for e in make_examples(60) if e.label != 1]
    model = TfidfBaseline(3).fit([e.text for e in train], [e.label for e in train])
    assert model.predict_proba(["tcp udp"])[0, 1] < 1e-6


def test_run_folds_records_out_of_fold_scores_for_every_answer() -> None:
    examples = make_examples(45)
    item = ItemData("q", 3, "en")
    folds = stratified_folds([e.label for e in examples], folds=3, repeats=2, seed=1)
    results = run_folds(examples, item, {"baseline": baseline_method}, folds)
    result = results["baseline"]
    assert len(result.fold_qwk) == 6 and len(result.scores) == 2
    for scores, confidence in zip(result.scores, result.confidence, strict=True):
        assert (scores >= 0).all() and not np.isnan(confidence).any()
