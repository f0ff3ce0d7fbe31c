"""The packaged backbone end to end on a handful of answers (the only test that loads it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_core.backbone import DEFAULT_BACKBONE, backbone_fingerprint, resolve_backbone
from ml_core.engine import ScoreRequest, ScoringEngine
from ml_core.training import TrainConfig, TrainExample, train_item

ANSWERS = [
    ("TCP has sequence numbers, acknowledgements and a window; UDP has a length field.", 2),
    ("The TCP header has sequence and acknowledgement numbers and flags, UDP does not.", 2),
    ("TCP header includes the advertised window and urgent pointer, UDP has packet length.", 2),
    ("TCP is reliable and UDP is not.", 1),
    ("UDP is faster than TCP.", 1),
    ("TCP is connection oriented.", 1),
    ("I don't know.", 0),
    ("No submission.", 0),
    ("Both are protocols.", 0),
]


@pytest.mark.backbone
def test_packaged_backbone_trains_and_scores(tmp_path: Path) -> None:
    assert Path(resolve_backbone(None)).joinpath("config.json").is_file()
    assert backbone_fingerprint(None).startswith(DEFAULT_BACKBONE + "@sha256:")
    examples = [TrainExample(text, label, "train") for text, label in ANSWERS] + [
        TrainExample(text, label, "test") for text, label in ANSWERS[::3]
    ]
    artifact = train_item(
        examples,
        item_id="tcp-udp",
        num_labels=3,
        out_dir=tmp_path / "a",
        config=TrainConfig(kind="head", epochs=2),
    )
    assert artifact.size_bytes < 2_000_000
    engine = ScoringEngine()
    engine.load_item("tcp-udp", artifact.path, "v1")
    long_answer = "TCP has a sequence number. " * 200
    results = engine.score(
        [
            ScoreRequest("tcp-udp", ANSWERS[0][0]),
            ScoreRequest("tcp-udp", long_answer),
            ScoreRequest("tcp-udp", ""),
        ]
    )
    assert results[0].error is None and results[0].score in (0, 1, 2)
    assert results[1].truncated and results[1].error is None
    assert results[2].error == "empty answer"


@pytest.mark.backbone
def test_packaged_backbone_auto_round_trip_with_the_frozen_embedder(tmp_path: Path) -> None:
    from ml_core.auto import AutoConfig, AutoModel, frozen_embedder, train_auto

    embed = frozen_embedder(None, "mean", threads=1)
    vectors = embed([text for text, _ in ANSWERS[:3]])
    assert vectors.shape == (3, 384) and vectors.dtype.name == "float32"
    examples = [TrainExample(text, label) for text, label in ANSWERS * 2]
    train_auto(examples, 3, tmp_path / "auto", config=AutoConfig(folds=3), embed=embed)
    model = AutoModel.load(tmp_path / "auto")
    assert model.backbone_fingerprint == backbone_fingerprint(None)
    assert model.self_check(embed) < 1e-4
    texts = ["TCP has a sequence number, UDP has not.", "No idea."]
    probabilities = model.probabilities(texts, embed(texts) if model.needs_embeddings else None)
    assert model.decode(probabilities).shape == (2,)


@pytest.mark.backbone
def test_a_backbone_given_as_a_local_folder_is_used_by_auto(tmp_path: Path) -> None:
    """Any folder with a sentence-transformers model works by configuration (issue 13, item 7):
    a copy of the packaged model, under another name, gives the same vectors and fingerprint."""
    import shutil

    from ml_core.auto import AutoConfig, AutoModel, frozen_embedder, train_auto
    from ml_core.backbone import backbone_label

    folder = tmp_path / "my-minilm"
    shutil.copytree(resolve_backbone(None), folder)
    assert resolve_backbone(str(folder)) == str(folder.resolve())
    assert backbone_label(str(folder)) == "my-minilm"
    # the same weights: the same hash under the folder's own name
    assert (
        backbone_fingerprint(str(folder)) == "my-minilm@" + backbone_fingerprint(None).split("@")[1]
    )
    texts = [text for text, _ in ANSWERS[:4]]
    local = frozen_embedder(str(folder), "mean", threads=1)
    packaged = frozen_embedder(None, "mean", threads=1)
    assert float(abs(local(texts) - packaged(texts)).max()) < 1e-5
    train_auto(
        [TrainExample(text, label) for text, label in ANSWERS * 2],
        3,
        tmp_path / "auto",
        backbone=str(folder),
        config=AutoConfig(folds=3),
        reference_answers=[ANSWERS[0][0]],
    )
    model = AutoModel.load(tmp_path / "auto")
    assert model.manifest["backbone"] == "my-minilm"
    assert model.self_check(local) < 1e-4
