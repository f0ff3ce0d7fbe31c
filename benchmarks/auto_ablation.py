"""Ablation of ``auto`` settings against the baseline on the same folds (issue 13).

Each variant is an ``AutoConfig`` override, trained and served through the artifact exactly as
the benchmark's ``auto`` kind; prints the mean QWK per variant and language and the difference to
the TF-IDF baseline. Usage (a subset of items keeps it short)::

    .venv/bin/python benchmarks/auto_ablation.py --items-only saf-de-1,saf-en-2.1_DLL \
        --variant base: --variant ref:reference_features=True
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ml_core.auto import AutoConfig, AutoModel, train_auto
from ml_core.backbone import backbone_fingerprint
from ml_core.crossval import FoldPrediction, ItemData, folds_for, run_folds
from ml_core.data import read_items_csv, read_responses_csv
from ml_core.embeddings import EmbeddingCache, frozen_embedder
from ml_core.evaluation import examples_by_item
from ml_core.quality import baseline_method
from ml_core.training import TrainExample


def _parse_value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _variant(spec: str) -> tuple[str, AutoConfig]:
    name, _, overrides = spec.partition(":")
    values: dict[str, object] = {}
    for part in filter(None, overrides.split(";")):
        key, _, raw = part.partition("=")
        value = _parse_value(raw)
        values[key] = tuple(value) if isinstance(value, list) else value
    return name, dataclasses.replace(AutoConfig(), **values)  # type: ignore[arg-type]


def _method(cache: EmbeddingCache, config: AutoConfig):  # type: ignore[no-untyped-def]
    def method(
        train: Sequence[TrainExample], test: Sequence[TrainExample], item: ItemData
    ) -> FoldPrediction:
        texts = [e.text for e in test]
        with tempfile.TemporaryDirectory() as tmp:
            train_auto(
                train,
                item.num_labels,
                Path(tmp),
                config=config,
                reference_answers=item.reference_answers,
                embed=cache,
                item_id=item.item_id,
            )
            model = AutoModel.load(Path(tmp))
        embeddings = cache(texts) if model.needs_embeddings else None
        probabilities = model.probabilities(texts, embeddings)
        return FoldPrediction(scores=model.decode(probabilities), probabilities=probabilities)

    return method


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--responses", default="../shared/datasets/saf/responses.csv")
    parser.add_argument("--items", default="../shared/datasets/saf/items.csv")
    parser.add_argument("--items-only", default="")
    parser.add_argument("--variant", action="append", default=[])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cache", default="var/embeddings")
    args = parser.parse_args()
    bank = {i.item_id: i for i in read_items_csv(args.items)}
    grouped = examples_by_item(read_responses_csv(args.responses, bank))
    ids = [i for i in args.items_only.split(",") if i] or sorted(grouped)
    key = backbone_fingerprint(None).replace("@sha256:", "-").replace("/", "_")
    lazy: list[object] = []

    def embed(texts: Sequence[str]) -> np.ndarray:
        if not lazy:
            lazy.append(frozen_embedder(None))
        return lazy[0](texts)  # type: ignore[operator]

    cache = EmbeddingCache(embed, Path(args.cache) / f"{key}-mean")
    methods = {"baseline": baseline_method}
    for spec in args.variant or ["auto:"]:
        name, config = _variant(spec)
        methods[name] = _method(cache, config)
    table: dict[str, dict[str, float]] = {}
    for item_id in ids:
        record = bank[item_id]
        examples = grouped[item_id]
        item = ItemData(item_id, record.max_score + 1, record.language, (record.reference_answer,))
        cache.preload([e.text for e in examples])
        folds = folds_for(examples, "cv", folds=5, repeats=args.repeats, seed=13)
        results = run_folds(examples, item, methods, folds)
        table[item_id] = {n: float(np.mean(r.fold_qwk)) for n, r in results.items()}
        secs = {n: float(np.mean(r.train_seconds)) for n, r in results.items()}
        print(
            item_id,
            " ".join(f"{n}={q:.3f}({secs[n]:.1f}s)" for n, q in table[item_id].items()),
            flush=True,
        )
    for lang in ("de", "en", ""):
        rows = [v for k, v in table.items() if lang in k.split("-")[1:2] or not lang]
        if not rows:
            continue
        base = np.mean([r["baseline"] for r in rows])
        print(
            f"[{lang or 'all'} n={len(rows)}] baseline={base:.3f} "
            + " ".join(
                f"{n}={np.mean([r[n] for r in rows]):.3f}({np.mean([r[n] for r in rows]) - base:+.3f})"
                for n in methods
                if n != "baseline"
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
