"""The gaming check's generated answers, its report, and the run-time flags."""

from __future__ import annotations

from collections.abc import Sequence

from ml_core.gaming import (
    ATTACKS,
    FLAG_INVISIBLE,
    FLAG_KEY_TERMS,
    FLAG_PROMPT_COPY,
    GamingItem,
    GamingReport,
    adversarial_answers,
    flag_answer,
    gaming_check,
    key_terms,
    words,
)

ITEM = GamingItem(
    prompt="Why does TCP use sequence numbers?",
    reference_answer="Sequence numbers let the receiver reorder segments and detect lost or "
    "duplicated segments, so retransmission can repair the byte stream.",
    high_scoring=[
        "The receiver uses them to reorder segments that arrive out of order and to notice "
        "lost segments.",
        "They detect duplicated and lost segments so the sender can retransmit them.",
        "To reorder segments and detect loss, which triggers retransmission.",
    ],
    max_score=2,
    max_chars=2000,
)
GENUINE = [
    *ITEM.high_scoring,
    "So that segments can be put back in the right order by the receiver.",
    "Because packets can arrive out of order, and the numbers say where each byte belongs.",
    "TCP numbers every byte, so the receiver can tell which data is missing.",
]


def keyword_scorer(texts: Sequence[str]) -> tuple[list[int], list[float]]:
    """A gameable model: one point per distinct key term named, up to the maximum."""
    terms = set(key_terms(ITEM))
    scores = [min(ITEM.max_score, len(terms & set(words(t))) // 2) for t in texts]
    return scores, [0.9] * len(texts)


def test_key_terms_come_from_high_scoring_answers_not_the_prompt() -> None:
    terms = key_terms(ITEM)
    assert {"segments", "reorder", "lost"} <= set(terms)
    assert not {"tcp", "sequence", "numbers", "the", "and"} & set(terms)


def test_every_attack_generates_its_answers_within_the_length_limit() -> None:
    sets = adversarial_answers(ITEM, n=12)
    assert set(sets) == set(ATTACKS)
    assert all(len(texts) == 12 for texts in sets.values())
    assert all(len(t) <= ITEM.max_chars for texts in sets.values() for t in texts)
    assert max(len(t) for t in sets["padded"]) > ITEM.max_chars * 0.9
    assert ITEM.prompt in sets["prompt_copy"]
    assert adversarial_answers(ITEM, n=12, seed=3) == adversarial_answers(ITEM, n=12, seed=3)


def test_a_keyword_model_is_caught_earning_credit_for_term_lists() -> None:
    report = gaming_check(ITEM, keyword_scorer, n=20)
    rates = {r.attack: r for r in report.results}
    assert [r.attack for r in report.results] == list(ATTACKS)
    assert rates["key_terms"].credit_rate > 0.5
    assert rates["padded"].full_credit_rate == 1.0
    assert rates["gibberish"].credit_rate == 0.0
    assert rates["prompt_copy"].credit_rate == 0.0
    assert report.worst_credit_rate == max(r.credit_rate for r in report.results)
    assert "| key_terms | 20 |" in report.markdown()
    assert report.to_json()["attacks"][0]["attack"] == "prompt_copy"


def test_a_strict_model_earns_nothing() -> None:
    report = gaming_check(ITEM, lambda texts: ([0] * len(texts), [0.99] * len(texts)))
    assert report.worst_credit_rate == 0.0


def test_flags_catch_prompt_copies_term_lists_and_invisible_characters() -> None:
    terms = key_terms(ITEM)
    sets = adversarial_answers(ITEM, n=20)

    def rate(attack: str, flag: str) -> float:
        texts = sets[attack]
        return sum(flag in flag_answer(t, ITEM.prompt, terms) for t in texts) / len(texts)

    assert rate("invisible", FLAG_INVISIBLE) == 1.0
    assert rate("prompt_copy", FLAG_PROMPT_COPY) >= 0.8
    assert rate("key_terms", FLAG_KEY_TERMS) >= 0.8
    assert rate("gibberish", FLAG_KEY_TERMS) == 0.0


def test_genuine_answers_are_not_flagged() -> None:
    terms = key_terms(ITEM)
    assert [flag_answer(t, ITEM.prompt, terms) for t in GENUINE] == [[]] * len(GENUINE)
    assert flag_answer("TCP and UDP", "Name two transport protocols.", ["tcp", "udp"]) == []


def test_answers_the_scorer_cannot_score_are_counted_apart() -> None:
    def fails_on_long(texts: Sequence[str]) -> tuple[list[int | None], list[float | None]]:
        scores, confidences = keyword_scorer(texts)
        return (
            [None if len(t) > 500 else s for t, s in zip(texts, scores, strict=True)],
            [None if len(t) > 500 else c for t, c in zip(texts, confidences, strict=True)],
        )

    rates = {r.attack: r for r in gaming_check(ITEM, fails_on_long, n=10).results}
    assert rates["padded"].errors == 10 and rates["padded"].credit_rate is None
    assert rates["key_terms"].errors == 0 and rates["key_terms"].credit_rate is not None
    assert "| padded | 10 (10 not scored) | - |" in GamingReport(2, [rates["padded"]]).markdown()


def test_the_prompt_copy_shortcut_decides_as_the_full_similarity_does() -> None:
    # _similar tries difflib's cheap upper bounds before the full ratio; on near copies, edits,
    # reorderings and unrelated answers it must flag exactly what the full ratio flags
    import random
    from difflib import SequenceMatcher

    from ml_core.gaming import _similar

    rng = random.Random(5)
    prompt = words(ITEM.prompt)
    vocabulary = sorted(set(prompt) | {w for t in GENUINE for w in words(t)})
    cases = []
    for _ in range(300):
        copy = list(prompt)
        for _ in range(rng.randrange(0, len(copy) + 1)):
            copy[rng.randrange(len(copy))] = rng.choice(vocabulary)
        if rng.random() < 0.3:
            rng.shuffle(copy)
        cases.append(" ".join(copy[: rng.randrange(1, len(copy) + 1)]))
    decided = [_similar(c, " ".join(prompt), 0.8) for c in cases]
    full = [SequenceMatcher(None, c, " ".join(prompt)).ratio() >= 0.8 for c in cases]
    assert decided == full
    assert 0 < sum(decided) < len(decided)  # both outcomes occur among the cases
