"""One way to serve any model kind (issue 13, item 4): a serving set scores a mixed batch of
head, lora, distilled, merged, full and auto items in one call, each item with its own model;
versions swap and retire without touching the other items."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from ml_core.artifact import ArtifactError, load_artifact
from ml_core.auto import AutoConfig, AutoModel, train_auto
from ml_core.distill.api import distill_item
from ml_core.distill.scorer import DistilledScorer
from ml_core.engine import ScoreRequest, ScoreResult, ScoringEngine
from ml_core.merge.config import MergeConfig
from ml_core.merge.group import GroupScorer
from ml_core.merge.models import Encoder
from ml_core.merge.pipeline import merge_group, prepare_item
from ml_core.serving import AutoScorer, LazyEngine, Scorer, ServingSet, default_loaders
from ml_core.training import TrainConfig, train_item
from tests.ml_core_distill.conftest import fake_teacher, fast_config
from tests.ml_core_merge.conftest import toy_examples

Trained = dict[str, tuple[Path, list]]


@pytest.fixture(scope="module")
def artifacts(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One artifact per kind (head, lora, distilled, auto) for items about tcp/udp."""
    root = tmp_path_factory.mktemp("serving-set")
    examples = toy_examples(60, seed=3, keywords=("tcp", "udp"))
    out: dict[str, Path] = {}
    for kind in ("head", "lora"):
        train_item(
            examples,
            item_id=kind,
            num_labels=3,
            out_dir=root / kind,
            backbone=str(tiny_backbone),
            config=TrainConfig(kind=kind, epochs=2, seed=1),
        )
        out[kind] = root / kind
    texts = [e.text for e in examples]
    labels = np.array([e.label for e in examples])
    out["distilled"] = distill_item(
        texts,
        labels,
        fake_teacher(labels),
        config=fast_config(epochs=3),
        out_dir=root / "distilled",
        item_id="distilled",
        model_version="distilled@v1",
    ).path
    # one auto model that reads the backbone (lexical + embedding) and one that does not
    for name, candidate in (("auto", "joint"), ("auto-lexical", "lexical")):
        config = AutoConfig(candidates=(candidate,))
        out[name] = train_auto(
            examples, 3, root / name, backbone=str(tiny_backbone), config=config
        ).path
    assert AutoModel.load(out["auto"]).needs_embeddings
    assert not AutoModel.load(out["auto-lexical"]).needs_embeddings
    return out


@pytest.fixture(scope="module")
def group_folder(
    full_items: Trained, tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A merged ``full`` group of q-a, q-b and q-c."""
    encoder = Encoder(str(tiny_backbone))
    items = [prepare_item(load_artifact(p), ex, encoder) for p, ex in full_items.values()]
    folder = tmp_path_factory.mktemp("serving-set-group") / "group"
    merge_group(items, encoder, folder, group_id="g", config=MergeConfig(), backbone_label="tiny")
    return folder


def _serving_set(backbone: Path) -> ServingSet:
    engine = LazyEngine(lambda: ScoringEngine(str(backbone), backend="torch", threads=1))
    loaders = default_loaders(
        engine, lambda folder: GroupScorer(folder, str(backbone)), DistilledScorer
    )
    return ServingSet(loaders, engine=engine)


def _same(a: ScoreResult, b: ScoreResult) -> None:
    assert (a.item_key, a.score, a.model_version, a.error) == (
        b.item_key,
        b.score,
        b.model_version,
        b.error,
    )
    assert np.allclose(a.probabilities, b.probabilities, atol=1e-4)
    assert a.confidence == pytest.approx(b.confidence, abs=1e-4)


def _answers(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = "tcp udp router switch the data layer network packet".split()
    return [" ".join(rng.sample(words, rng.randint(1, 5))) for _ in range(count)]


def test_a_mixed_batch_of_every_kind_is_scored_in_one_call_each_item_by_its_own_model(
    artifacts: dict[str, Path],
    full_items: Trained,
    group_folder: Path,
    tiny_backbone: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served = _serving_set(tiny_backbone)
    served.ensure("h", "head", "h@v1", artifacts["head"])
    served.ensure("l", "lora", "l@v1", artifacts["lora"])
    served.ensure("d", "distilled", "d@v2", artifacts["distilled"])
    served.ensure("au", "auto", "au@v3", artifacts["auto"])
    served.ensure("al", "auto", "al@v1", artifacts["auto-lexical"])
    served.ensure("q-a", "merged", "q-a@v4", group_folder)
    served.ensure("q-b", "merged", "q-b@v4", group_folder)
    served.ensure("q-c", "full", "q-c@v1", full_items["q-c"][0])
    assert all(isinstance(s, Scorer) for s in served.scorers())
    keys = ["h", "au", "q-a", "d", "l", "q-c", "au", "q-b", "al", "h", "d", "au", "l", "al"]
    requests = [ScoreRequest(k, t) for k, t in zip(keys, _answers(len(keys)), strict=True)]
    requests.append(ScoreRequest("au", "   "))  # bad input: an error for this answer only
    requests.append(ScoreRequest("nobody", "tcp"))

    # what each item's model says alone
    engine = ScoringEngine(str(tiny_backbone), backend="torch", threads=1)
    engine.load_item("h", artifacts["head"], "h@v1")
    engine.load_item("l", artifacts["lora"], "l@v1")
    student = DistilledScorer(artifacts["distilled"])
    autos = {
        "au": AutoModel.load(artifacts["auto"]),
        "al": AutoModel.load(artifacts["auto-lexical"]),
    }
    group = GroupScorer(group_folder, str(tiny_backbone))
    full = GroupScorer(full_items["q-c"][0], str(tiny_backbone))

    def alone(request: ScoreRequest) -> ScoreResult:
        key, text = request.item_key, request.text
        if key in ("h", "l"):
            return engine.score([request])[0]
        if key == "d":
            return student.score_requests([ScoreRequest("d", text)], {"d": "d@v2"})[0]
        if key in ("q-a", "q-b"):
            return group.score_requests([request], {key: f"{key}@v4"})[0]
        if key == "q-c":
            return full.score_requests([request], {key: "q-c@v1"})[0]
        auto = autos[key]
        vectors = engine.embed([text]) if auto.needs_embeddings else None
        probabilities = auto.probabilities([text], vectors)
        chosen = int(auto.decode(probabilities)[0])
        return ScoreResult(
            key,
            auto.labels[chosen],
            tuple(float(p) for p in probabilities[0]),
            float(probabilities[0][chosen]),
            "au@v3" if key == "au" else "al@v1",
        )

    expected = [alone(r) for r in requests[:-2]]

    # the backbone runs once for the engine's items and the auto item's vectors together
    assert served.engine is not None
    backend = served.engine()._backend
    rows_per_pass: list[int] = []
    encode = backend.encode

    def counting(input_ids, attention_mask, item_index, tables):  # type: ignore[no-untyped-def]
        rows_per_pass.append(len(input_ids))
        return encode(input_ids, attention_mask, item_index, tables)

    monkeypatch.setattr(backend, "encode", counting)
    results = served.score(requests)
    for got, want in zip(results, expected, strict=False):
        _same(got, want)
    # the vector each answer was scored from comes back where the backbone ran (answer groups)
    for request, got in zip(requests[:-2], results, strict=False):
        if request.item_key in ("h", "l", "au"):
            assert got.vector is not None and got.vector.shape == (engine.hidden_size,)
        if request.item_key == "au":
            assert np.allclose(got.vector, engine.embed([request.text])[0], atol=1e-4)
        if request.item_key in ("d", "al", "q-a", "q-b", "q-c"):
            assert got.vector is None
    assert results[-2].error == "empty answer" and results[-2].model_version == "au@v3"
    assert results[-1].error and results[-1].score is None
    engine_rows = sum(1 for k in keys if k in ("h", "l"))
    assert rows_per_pass == [engine_rows + keys.count("au")]  # not "al": it reads no vectors
    assert set(served.served()) == {"h", "l", "d", "au", "al", "q-a", "q-b", "q-c"}
    parts = served.resident_bytes()
    assert parts["ScoringEngine.backbone"] > 0 and parts["GroupServing.encoder"] > 0


def test_a_version_swaps_in_and_the_other_items_keep_theirs(
    artifacts: dict[str, Path],
    group_folder: Path,
    tiny_backbone: Path,
) -> None:
    served = _serving_set(tiny_backbone)
    served.ensure("x", "head", "x@v1", artifacts["head"])
    served.ensure("d", "distilled", "d@v1", artifacts["distilled"])
    texts = _answers(4, seed=1)
    before = served.score([ScoreRequest("d", t) for t in texts])
    engine = served.engine() if served.engine else None
    assert engine is not None

    served.ensure("x", "lora", "x@v2", artifacts["lora"])  # same scorer, new version
    assert engine.loaded() == {"x": "x@v2"}
    assert {r.model_version for r in served.score([ScoreRequest("x", "tcp")])} == {"x@v2"}

    served.ensure("x", "auto", "x@v3", artifacts["auto"])  # another scorer: the engine lets go
    assert engine.loaded() == {}
    result = served.score([ScoreRequest("x", "tcp udp")])[0]
    assert result.model_version == "x@v3" and result.error is None

    served.ensure("q-a", "merged", "q-a@v1", group_folder)
    served.ensure("q-a", "head", "q-a@v2", artifacts["head"])  # the group's encoder is dropped
    assert not any(isinstance(getattr(s, "scorer", None), GroupScorer) for s in served.scorers())

    # a version that cannot be loaded leaves the served one in place
    with pytest.raises(ArtifactError):
        served.ensure("x", "head", "x@v4", artifacts["auto"])
    assert served.served()["x"].version == "x@v3"
    with pytest.raises(ArtifactError, match="no loader"):
        served.ensure("x", "unknown-kind", "x@v5", artifacts["head"])

    after = served.score([ScoreRequest("d", t) for t in texts])
    for a, b in zip(after, before, strict=True):
        _same(a, b)  # the student was untouched by the swaps


def test_retiring_frees_an_item_and_only_it(
    artifacts: dict[str, Path],
    group_folder: Path,
    tiny_backbone: Path,
) -> None:
    served = _serving_set(tiny_backbone)
    served.ensure("h", "head", "h@v1", artifacts["head"])
    served.ensure("au", "auto", "au@v1", artifacts["auto"])
    served.ensure("q-a", "merged", "q-a@v1", group_folder)
    served.ensure("q-b", "merged", "q-b@v1", group_folder)
    auto = next(s for s in served.scorers() if isinstance(s, AutoScorer))

    assert served.retire("au") and auto.held() == {}
    result = served.score([ScoreRequest("au", "tcp"), ScoreRequest("h", "tcp")])
    assert result[0].error and result[1].error is None
    assert not served.retire("au")

    # the group's encoder stays while one of its items is served from it
    served.retire("q-a")
    (group,) = [s for s in served.scorers() if isinstance(getattr(s, "scorer", None), GroupScorer)]
    assert dict(group.held()) == {"q-b": "q-b@v1"}
    # retire what is no longer active: q-b's active version is another one, h's is the same
    assert served.retire_except({"h": "h@v1", "q-b": "q-b@v2"}) == 1
    assert set(served.served()) == {"h"}
    assert not any(isinstance(getattr(s, "scorer", None), GroupScorer) for s in served.scorers())
    engine = served.engine() if served.engine else None
    assert engine is not None and engine.loaded() == {"h": "h@v1"}
