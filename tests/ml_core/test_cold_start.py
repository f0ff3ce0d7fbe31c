"""ml_core.cold_start: the batch suggester, the few-answers model and the learning curve."""

from __future__ import annotations

import numpy as np
import pytest

from ml_core.cold_start import (
    FEATURE_NAMES,
    BankPrior,
    ColdStartConfig,
    answers_for,
    decode,
    fit_power_law,
    learning_curve,
    normalise_rows,
    point_sigmas,
    predict_probabilities,
    reference_features,
    representativeness,
    score_uncertainty,
    suggest_batch,
    weighted_qwk,
)
from ml_core.metrics import quadratic_weighted_kappa


def clustered(per_class: int = 30, classes: int = 3, noise: float = 0.15, seed: int = 0):
    """Normalised vectors in ``classes`` clusters (class k around axis k) and their labels."""
    rng = np.random.default_rng(seed)
    dim = 12
    rows, labels = [], []
    for label in range(classes):
        centre = np.zeros(dim)
        centre[label] = 1.0
        rows.append(centre + noise * rng.standard_normal((per_class, dim)))
        labels += [label] * per_class
    return normalise_rows(np.vstack(rows)), np.array(labels)


def test_first_batch_with_nothing_scored_covers_every_cluster():
    vectors, labels = clustered()
    batch = suggest_batch(vectors, [], [], 3, 3)
    assert len(set(batch)) == 3
    assert sorted(labels[batch].tolist()) == [0, 1, 2]


def test_batches_never_repeat_a_scored_answer_and_stay_in_the_candidates():
    vectors, labels = clustered()
    scored = [0, 1, 30, 31, 60, 61]
    candidates = list(range(0, 90, 2))
    batch = suggest_batch(vectors, scored, labels[scored], 3, 10, candidates=candidates)
    assert len(batch) == len(set(batch)) == 10
    assert not set(batch) & set(scored)
    assert set(batch) <= set(candidates)
    assert suggest_batch(vectors, list(range(88)), labels[:88], 3, 5) == [88, 89]


def test_uncertainty_picks_the_answers_between_the_scored_classes():
    rng = np.random.default_rng(1)
    low = np.array([1.0, 0.0, 0.0]) + 0.05 * rng.standard_normal((20, 3))
    high = np.array([0.0, 1.0, 0.0]) + 0.05 * rng.standard_normal((20, 3))
    between = np.array([1.0, 1.0, 0.0]) + 0.05 * rng.standard_normal((5, 3))
    vectors = normalise_rows(np.vstack([low, high, between]))
    scored = list(range(0, 20, 2)) + list(range(20, 40, 2))
    labels = [0] * 10 + [2] * 10
    # the rare x uncertain x distant phase (before cluster coverage takes over)
    config = ColdStartConfig(own_c=10.0)  # coverage off (the default)
    batch = suggest_batch(vectors, scored, labels, 3, 5, config=config)
    # the diversity term may send the last pick elsewhere once four "between" answers are in
    assert len(set(batch) & set(range(40, 45))) >= 4


def test_batches_lean_towards_the_score_levels_scored_least():
    vectors, labels = clustered(per_class=30, classes=3, noise=0.1, seed=6)
    # many 0s and 1s scored, a single 2: the next batch goes mostly to the 2s
    scored = list(range(0, 12)) + list(range(30, 42)) + [60]
    for coverage_from in (10, None):  # both rules: cluster coverage and rare x uncertain
        config = ColdStartConfig(own_c=10.0, coverage_from=coverage_from)
        batch = suggest_batch(vectors, scored, labels[scored], 3, 6, config=config)
        assert len(set(batch)) == 6
        assert (labels[batch] == 2).sum() >= 4


def test_cluster_coverage_takes_one_typical_answer_per_unscored_group():
    rng = np.random.default_rng(11)
    dim = 16
    groups, labels = [], []
    # six tight groups of answers; the first three are scored (many answers each), the last
    # three have no scored answer yet
    for group in range(6):
        centre = np.zeros(dim)
        centre[group] = 1.0
        groups.append(centre + 0.05 * rng.standard_normal((15, dim)))
        labels += [min(group, 2)] * 15
    vectors = normalise_rows(np.vstack(groups))
    truth = np.array(labels)
    scored = list(range(0, 45, 3))  # five from each of the first three groups
    config = ColdStartConfig(coverage_from=10)
    batch = suggest_batch(vectors, scored, truth[scored], 3, 3, config=config)
    assert len(scored) >= 10
    # one answer from each group nobody has scored, not three from the same one
    assert sorted(i // 15 for i in batch) == [3, 4, 5]
    for i in batch:  # the most typical answer of its group: nearest the group's mean direction
        members = np.arange(15 * (i // 15), 15 * (i // 15 + 1))
        typical = (vectors[members] @ vectors[members].T).mean(axis=1)
        assert i == members[int(np.argmax(typical))]


def test_weighted_qwk_matches_repeating_answers_and_representativeness_counts_neighbours():
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 4, 40)
    guess = np.clip(truth + rng.integers(-1, 2, 40), 0, 3)
    assert weighted_qwk(truth, guess, 4, np.ones(40)) == pytest.approx(
        quadratic_weighted_kappa(truth, guess, 4)
    )
    twice = np.r_[np.ones(20), 2 * np.ones(20)]
    repeated = np.r_[np.arange(40), np.arange(20, 40)]
    assert weighted_qwk(truth, guess, 4, twice) == pytest.approx(
        quadratic_weighted_kappa(truth[repeated], guess[repeated], 4)
    )
    vectors, _ = clustered(per_class=10, classes=2, noise=0.05, seed=8)
    # one scored answer from the first cluster, two from the second: the first stands for 10
    weights = representativeness(vectors, np.array([0, 10, 11]))
    assert weights[0] == 10 and weights[1:].sum() == 10


def test_score_uncertainty_is_zero_for_certainty_and_one_for_the_extremes_split():
    probabilities = np.array([[1.0, 0, 0], [0.5, 0, 0.5], [0, 1.0, 0]])
    assert score_uncertainty(probabilities).tolist() == pytest.approx([0.0, 1.0, 0.0])


def test_own_model_learns_and_blends_towards_the_prior_with_few_answers():
    vectors, labels = clustered(seed=2)
    nothing = predict_probabilities(vectors, [], [], 3)
    assert np.allclose(nothing, 1 / 3)
    prior = np.tile([0.0, 0.0, 1.0], (len(labels), 1))
    assert np.allclose(predict_probabilities(vectors, [0], [0], 3, prior=prior), prior)
    train = list(range(0, 90, 3))
    test = [i for i in range(90) if i not in train]
    own = predict_probabilities(vectors, train, labels[train], 3)
    assert quadratic_weighted_kappa(labels[test], decode(own[test]), 3) > 0.9
    few = predict_probabilities(vectors, train[:6], labels[train[:6]], 3, prior=prior)
    many = predict_probabilities(vectors, train, labels[train], 3, prior=prior)
    # the wrong prior ("everything scores 2") weighs less as scored answers grow
    assert few[:30, 2].mean() > many[:30, 2].mean()
    with pytest.raises(ValueError, match="labels must lie"):
        predict_probabilities(vectors, [0, 1], [0, 5], 3)


def test_reference_features_rank_the_reference_itself_first():
    rng = np.random.default_rng(3)
    reference = "the tcp header has a sequence number and a window"
    texts = [reference, "no idea", "udp is faster", "tcp has a sequence number"]
    reference_vector = rng.standard_normal((1, 8))
    vectors = np.vstack([reference_vector, rng.standard_normal((3, 8))])
    features = reference_features(
        texts, vectors, [reference], reference_vector, rng.standard_normal(8)
    )
    assert features.shape == (4, len(FEATURE_NAMES))
    column = dict(zip(FEATURE_NAMES, features.T, strict=True))
    assert column["cos_reference"][0] == pytest.approx(1.0)
    assert column["cos_reference_rank"][0] == 1.0
    assert column["reference_recall"][0] == 1.0
    assert column["reference_recall"][1] == 0.0
    assert 0 < column["reference_recall"][3] < 1
    with pytest.raises(ValueError, match="reference answer"):
        reference_features(texts, vectors, [], np.zeros((0, 8)), np.zeros(8))


def test_bank_prior_learns_a_score_from_features_and_spreads_it_over_classes():
    rng = np.random.default_rng(4)
    features = rng.uniform(0, 1, (400, 3))
    scores = np.clip(features[:, 0] + 0.05 * rng.standard_normal(400), 0, 1)
    prior = BankPrior().fit(features, scores)
    test = rng.uniform(0, 1, (100, 3))
    assert np.corrcoef(prior.predict(test), test[:, 0])[0, 1] > 0.9
    probabilities = prior.class_probabilities(np.array([[0.95, 0.5, 0.5], [0.05, 0.5, 0.5]]), 5)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert probabilities[0].argmax() == 4 and probabilities[1].argmax() == 0
    with pytest.raises(ValueError, match="at least 20"):
        BankPrior().fit(features[:5], scores[:5])
    with pytest.raises(ValueError, match="0..1"):
        BankPrior().fit(features, scores * 4)


def test_power_law_fit_recovers_a_known_curve_and_the_answers_it_needs():
    sizes = np.array([5, 8, 12, 20, 30, 45, 70])
    qwk = 0.85 - 1.2 * sizes**-0.6
    a, b, c = fit_power_law(sizes, qwk)
    assert (a, b, c) == pytest.approx((0.85, 1.2, 0.6), rel=0.02)
    needed = answers_for((a, b, c), 0.8)
    assert needed == pytest.approx((1.2 / 0.05) ** (1 / 0.6), rel=0.05)
    assert answers_for((a, b, c), 0.9) is None
    assert answers_for((a, b, c), 0.8, limit=needed / 2) is None  # too far to say
    assert fit_power_law([5, 10], [0.1, 0.2]) is None
    fixed = fit_power_law(sizes, qwk, exponent=0.6)
    assert fixed == pytest.approx((0.85, 1.2, 0.6), rel=1e-6)
    assert fit_power_law(sizes, qwk[::-1], exponent=0.5)[1] == 0.0  # a falling curve: flat


def test_learning_curve_estimates_answers_for_a_reachable_target_only():
    vectors, labels = clustered(per_class=40, noise=0.5, seed=5)
    rng = np.random.default_rng(5)
    noisy = labels.copy()
    flip = rng.random(len(noisy)) < 0.15
    noisy[flip] = rng.integers(0, 3, flip.sum())
    scored = rng.permutation(len(labels))[:80]
    config = ColdStartConfig(curve_bootstrap=40, curve_repeats=1)
    curve = learning_curve(vectors, scored, noisy[scored], 3, 0.5, config=config)
    assert curve.scored == 80
    assert [p.size for p in curve.points] == sorted(p.size for p in curve.points)
    assert curve.points[-1].qwk > curve.points[0].qwk
    assert curve.needed is not None and curve.reachable > 0.5
    unreachable = learning_curve(vectors, scored, noisy[scored], 3, 0.999, config=config)
    assert unreachable.needed is None and unreachable.more_needed is None
    assert unreachable.to_json()["needed"] is None
    with pytest.raises(ValueError, match="at least 10"):
        learning_curve(vectors, scored[:5], noisy[scored[:5]], 3, 0.5, config=config)


def test_curve_point_weights_grow_with_the_training_size_or_shrink_with_the_variance():
    sizes = [4, 16, 64]
    assert point_sigmas(sizes, np.zeros(3), "none") is None
    weights = {w: point_sigmas(sizes, np.zeros(3), w) ** -2 for w in ("sqrt", "size")}
    assert weights["sqrt"] / weights["sqrt"][0] == pytest.approx([1, 2, 4])
    assert weights["size"] / weights["size"][0] == pytest.approx([1, 4, 16])
    sds = np.array([0.2, 0.1, 0.05])
    assert point_sigmas(sizes, sds, "inverse_variance") == pytest.approx(sds)
    with pytest.raises(ValueError, match="bootstrap"):
        point_sigmas(sizes, np.zeros(3), "inverse_variance")
    with pytest.raises(ValueError, match="unknown"):
        point_sigmas(sizes, sds, "sizes")


def test_size_weights_make_the_fit_follow_the_points_with_more_answers():
    sizes = np.array([5, 7, 10, 14, 20, 28, 40])
    qwk = 0.8 - 0.9 * sizes**-0.5
    qwk[:2] += 0.15  # small training sets that read too well (a prior that flatters them)
    plain = fit_power_law(sizes, qwk)
    weighted = fit_power_law(sizes, qwk, point_sigmas(sizes, np.zeros(len(sizes)), "size"))
    miss = {
        name: abs((params[0] - params[1] * 40.0 ** -params[2]) - qwk[-1])
        for name, params in (("plain", plain), ("weighted", weighted))
    }
    assert miss["weighted"] < miss["plain"]


def test_bootstrap_median_estimate_lies_within_the_bootstrap_interval():
    vectors, labels = clustered(per_class=40, noise=0.5, seed=5)
    rng = np.random.default_rng(5)
    noisy = labels.copy()
    flip = rng.random(len(noisy)) < 0.15
    noisy[flip] = rng.integers(0, 3, flip.sum())
    scored = rng.permutation(len(labels))[:80]
    config = ColdStartConfig(curve_bootstrap=40, curve_repeats=1, curve_estimate="bootstrap_median")
    curve = learning_curve(vectors, scored, noisy[scored], 3, 0.5, config=config)
    assert curve.needed is not None and curve.reachable >= 0.9
    assert curve.needed_low <= curve.needed <= curve.needed_high
    unreachable = learning_curve(vectors, scored, noisy[scored], 3, 0.999, config=config)
    assert unreachable.needed is None
    weighted = ColdStartConfig(
        curve_bootstrap=40, curve_repeats=1, curve_point_weight="inverse_variance"
    )
    assert learning_curve(vectors, scored, noisy[scored], 3, 0.5, config=weighted).needed
    with pytest.raises(ValueError, match="bootstrap"):
        learning_curve(
            vectors, scored, noisy[scored], 3, 0.5,
            config=ColdStartConfig(curve_bootstrap=0, curve_point_weight="inverse_variance"),
        )  # fmt: skip


def test_lookahead_picks_the_answer_whose_score_settles_the_most_others():
    rng = np.random.default_rng(3)

    def around(centre: list[float], count: int) -> np.ndarray:
        return np.array(centre) + 0.05 * rng.standard_normal((count, 4))

    low, high = around([1, 0, 0, 0], 20), around([0, 1, 0, 0], 20)
    crowd = around([1, 1, 0, 0], 30)  # many unscored answers between the scored levels
    loners = np.array([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    vectors = normalise_rows(np.vstack([low, high, crowd, loners]))
    scored = list(range(0, 20, 2)) + list(range(20, 40, 2))
    labels = [0] * 10 + [2] * 10
    config = ColdStartConfig(own_c=10.0, lookahead=10)
    batch = suggest_batch(vectors, scored, labels, 3, 2, config=config)
    assert len(batch) == 2 and set(batch) <= set(range(40, 70))  # none of the loners
    plain = suggest_batch(vectors, scored, labels, 3, 10, config=ColdStartConfig(own_c=10.0))
    assert set(plain) & set(range(70, 73))  # the rule alone takes loners into its batch
