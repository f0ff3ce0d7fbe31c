"""The distillation loss and the student's training loop."""

from __future__ import annotations

import numpy as np
import torch

from ml_core.distill.student import StudentModel, pad_batch, parameter_count
from ml_core.distill.trainer import (
    NO_LABEL,
    StudentSet,
    distillation_loss,
    predict_probabilities,
    soften,
    train_student,
)
from ml_core.distill.vocabulary import build_word_vocabulary
from tests.ml_core_distill.conftest import fake_teacher, fast_config, toy_answers


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    logits = torch.randn(6, 3)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    # a teacher that disagrees with the labels, so the soft term pulls elsewhere
    soft = torch.from_numpy(soften(fake_teacher(np.array([1, 2, 0, 1, 2, 0])), 2.0))
    return logits, labels, soft


def test_lambda_zero_is_plain_cross_entropy() -> None:
    logits, labels, soft = _batch()
    loss = distillation_loss(logits, labels, soft, distill_lambda=0.0, temperature=2.0)
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(logits, labels))


def test_lambda_changes_the_loss() -> None:
    logits, labels, soft = _batch()
    losses = [
        float(distillation_loss(logits, labels, soft, distill_lambda=lam, temperature=2.0))
        for lam in (0.0, 0.5, 2.0)
    ]
    assert losses[0] < losses[1] < losses[2]


def test_unlabelled_answers_only_enter_the_soft_term() -> None:
    logits, labels, soft = _batch()
    unlabelled = torch.full_like(labels, NO_LABEL)
    assert (
        float(distillation_loss(logits, unlabelled, soft, distill_lambda=0.0, temperature=2.0))
        == 0.0
    )
    assert (
        float(distillation_loss(logits, unlabelled, soft, distill_lambda=1.0, temperature=2.0))
        > 0.0
    )


def test_temperature_softens_teacher_probabilities() -> None:
    teacher = fake_teacher(np.array([0]), confidence=0.9)
    assert soften(teacher, 3.0)[0, 0] < soften(teacher, 1.0)[0, 0] == np.float32(0.9)


def test_student_has_the_research_shape_and_ignores_padding() -> None:
    model = StudentModel(1000, 3).eval()
    # embedding 32 x 1000 + BiLSTM(16) + dense 16 + output: about 0.04M parameters
    assert 35_000 < parameter_count(model) < 45_000
    ids = [[5, 6, 7], [8]]
    with torch.no_grad():
        tight = model(pad_batch(ids))
        padded = model(torch.nn.functional.pad(pad_batch(ids), (0, 5)))
    assert torch.allclose(tight, padded, atol=1e-6)


def test_student_learns_a_separable_toy_task() -> None:
    texts, labels = toy_answers(90)
    vocabulary = build_word_vocabulary(texts[:70])
    ids = [e.ids for e in vocabulary.encode_batch(texts)]
    teacher = fake_teacher(labels)
    train = StudentSet(ids[:70], labels[:70], teacher[:70])
    val = StudentSet(ids[70:], labels[70:], teacher[70:])
    student = train_student(
        train,
        val,
        vocab_size=len(vocabulary),
        num_labels=3,
        config=fast_config(),
        distill_lambda=1.0,
    )
    accuracy = (predict_probabilities(student.model, ids[70:]).argmax(1) == labels[70:]).mean()
    assert accuracy >= 0.9
    assert student.history[-1]["train_loss"] < student.history[0]["train_loss"]


def test_training_is_seeded() -> None:
    texts, labels = toy_answers(30)
    vocabulary = build_word_vocabulary(texts)
    data = StudentSet([e.ids for e in vocabulary.encode_batch(texts)], labels, fake_teacher(labels))
    config = fast_config(epochs=3)
    first, second = (
        train_student(
            data, data, vocab_size=len(vocabulary), num_labels=3, config=config, distill_lambda=1.0
        )
        for _ in range(2)
    )
    for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(a, b)
