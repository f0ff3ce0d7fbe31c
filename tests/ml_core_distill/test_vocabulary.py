"""The student's vocabulary: ids, unknown words, padding, limits, round trip."""

from __future__ import annotations

import pytest

from ml_core.distill.vocabulary import PAD_ID, UNK_ID, Vocabulary, build_word_vocabulary


def test_words_are_lowercased_and_unknown_words_map_to_unk() -> None:
    vocabulary = build_word_vocabulary(["TCP header", "tcp port header"])
    ids = vocabulary.encode("Tcp HEADER sliding").ids
    assert ids[:2] == [vocabulary.tokens.index("tcp"), vocabulary.tokens.index("header")]
    assert ids[2] == UNK_ID


def test_padding_and_unknown_have_fixed_ids_and_are_never_words() -> None:
    vocabulary = build_word_vocabulary(["[pad] pad unk"], min_docs=1)
    assert vocabulary.tokens[PAD_ID] == "[PAD]" and vocabulary.tokens[UNK_ID] == "[UNK]"
    assert PAD_ID not in vocabulary.encode("pad unk [pad]").ids


def test_a_word_of_a_single_answer_is_not_kept_however_often_it_repeats() -> None:
    answers = ["Jonas Jonas Jonas says tcp", "tcp uses a window", "JONAS: the window slides"]
    vocabulary = build_word_vocabulary(answers[:2])
    assert "jonas" not in vocabulary.tokens and "says" not in vocabulary.tokens
    assert "tcp" in vocabulary.tokens
    assert vocabulary.encode("Jonas").ids == [UNK_ID]
    # the same word in a second answer is kept
    assert "jonas" in build_word_vocabulary(answers).tokens


def test_min_docs_one_keeps_every_word() -> None:
    vocabulary = build_word_vocabulary(["tcp tcp udp"], min_docs=1)
    assert vocabulary.tokens[2:] == ("tcp", "udp")


def test_text_without_tokens_gives_one_unknown_step() -> None:
    vocabulary = build_word_vocabulary(["tcp"], min_docs=1)
    assert vocabulary.encode("?!").ids == [UNK_ID]
    assert vocabulary.encode("").ids == [UNK_ID]


def test_long_text_is_cut_to_max_length_and_flagged() -> None:
    vocabulary = build_word_vocabulary(["tcp udp"], min_docs=1, max_length=8)
    encoded = vocabulary.encode("tcp " * 10_000)
    assert len(encoded.ids) == 8 and encoded.truncated
    assert not vocabulary.encode("tcp udp").truncated


def test_wordpiece_mode_splits_greedily_and_unknown_words_become_unk() -> None:
    vocabulary = Vocabulary(
        mode="wordpiece", tokens=("[PAD]", "[UNK]", "tcp", "##s", "header", ".")
    )
    assert vocabulary.split("TCPs header.") == ["tcp", "##s", "header", "."]
    assert vocabulary.encode("xyz tcp").ids == [UNK_ID, 2]


def test_round_trip_through_dict() -> None:
    vocabulary = build_word_vocabulary(["Größe der Fenster"], min_docs=1, max_length=16)
    again = Vocabulary.from_dict(vocabulary.to_dict())
    assert again == vocabulary
    assert again.encode("GRÖßE").ids == [vocabulary.tokens.index("größe")]


def test_vocabulary_must_start_with_pad_and_unk() -> None:
    with pytest.raises(ValueError):
        Vocabulary(mode="word", tokens=("tcp", "[PAD]", "[UNK]"))
