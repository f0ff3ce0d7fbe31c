"""``python -m ml_core benchmark``: quality of model kinds against the TF-IDF baseline (issue 13),
and, when ``lora`` is benchmarked, the cost of the multi-item engine (issue 3).

Writes ``report.json`` and ``report.md`` to the output folder. All ratios are measured in one run
on one machine, with the compared variants interleaved so that load from other processes hits
both alike; absolute timings on a shared machine are noisy.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import random
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ml_core.artifact import load_artifact
from ml_core.backbone import backbone_fingerprint, backbone_label
from ml_core.data import ItemRecord, read_items_csv, read_responses_csv
from ml_core.engine import ScoreRequest, ScoringEngine
from ml_core.evaluation import examples_by_item, num_labels_for
from ml_core.metrics import classification_report, confusion_matrix
from ml_core.quality import render_quality_markdown, run_quality
from ml_core.training import TrainConfig, TrainExample, fix_splits, train_item

logger = logging.getLogger(__name__)


@dataclass
class BenchmarkConfig:
    """What the benchmark runs."""

    responses: Path = field(metadata={"help": "responses.csv in the SAF layout"})
    out: Path = field(metadata={"help": "output folder for report.json, report.md, artifacts/"})
    items: Path | None = field(default=None, metadata={"help": "items.csv (max_score per item)"})
    backbone: str | None = field(default=None, metadata={"help": "backbone name or path"})
    items_only: tuple[str, ...] = field(default=(), metadata={"help": "restrict to these item ids"})
    max_train_per_item: int | None = field(
        default=None,
        metadata={"help": "cap answers per item (cv: all answers; split: training answers)"},
    )
    kinds: tuple[str, ...] = field(
        default=("auto",),
        metadata={"help": "kinds to evaluate (auto, head, lora, full); the baseline always runs"},
    )
    eval: str = field(
        default="cv", metadata={"help": "cv (repeated stratified k-fold) | split (data's own)"}
    )
    folds: int = field(default=5, metadata={"help": "cross-validation folds"})
    cv_repeats: int = field(default=2, metadata={"help": "cross-validation repeats"})
    embedding_cache: Path | None = field(
        default=None, metadata={"help": "folder for cached frozen-backbone vectors"}
    )
    backends: tuple[str, ...] = field(
        default=("torch", "onnx", "onnx-int8"),
        metadata={"help": "engine backends to time (only when lora is among the kinds)"},
    )
    mixed_batch: int = field(default=32, metadata={"help": "answers in the mixed batch"})
    repeats: int = field(default=15, metadata={"help": "timed repetitions per measurement"})
    latency_samples: int = field(default=100, metadata={"help": "single-answer calls for p50/p95"})
    throughput_answers: int = field(
        default=256, metadata={"help": "mixed test answers scored end to end for answers/s"}
    )
    reuse: bool = field(
        default=False,
        metadata={"help": "reuse artifacts already in out/artifacts (split mode and the engine)"},
    )
    seed: int = field(default=13, metadata={"help": "seed for folds, splits, initialisation"})
    epochs: int | None = field(
        default=None, metadata={"help": "override TrainConfig.epochs (head/lora/full)"}
    )
    onnx_cache: Path | None = field(
        default=None, metadata={"help": "folder of exported ONNX graphs (None: the default)"}
    )


def _interleaved(
    first: Callable[[], object], second: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Median seconds of two callables timed alternately (warm-up call each first)."""
    first()
    second()
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        first()
        a.append(time.perf_counter() - start)
        start = time.perf_counter()
        second()
        b.append(time.perf_counter() - start)
    return statistics.median(a), statistics.median(b)


def run_benchmark(config: BenchmarkConfig, log: Callable[[str], None] = print) -> dict[str, object]:
    """Quality of every kind and the baseline on the same folds; the engine when lora is asked.

    Writes ``report.json`` and ``report.md`` to ``config.out``.
    """
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    item_bank: dict[str, ItemRecord] = (
        {i.item_id: i for i in read_items_csv(config.items)} if config.items else {}
    )
    responses = read_responses_csv(config.responses, item_bank or None)
    grouped = examples_by_item(responses)
    item_ids = (
        sorted(grouped) if not config.items_only else [i for i in config.items_only if i in grouped]
    )
    missing = set(config.items_only) - set(grouped)
    if missing:
        raise ValueError(f"items not in {config.responses}: {sorted(missing)}")
    if config.eval == "split":
        evaluated = {
            i: fix_splits(grouped[i], config.max_train_per_item, config.seed) for i in item_ids
        }
    else:
        evaluated = {
            i: _capped(grouped[i], config.max_train_per_item, config.seed) for i in item_ids
        }

    report: dict[str, object] = {
        "backbone": backbone_label(config.backbone),
        "backbone_fingerprint": backbone_fingerprint(config.backbone),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
    }
    report["quality"] = run_quality(
        evaluated,
        item_bank,
        kinds=config.kinds,
        eval_mode=config.eval,
        folds=config.folds,
        repeats=config.cv_repeats,
        seed=config.seed,
        backbone=config.backbone,
        embedding_cache=config.embedding_cache,
        epochs=config.epochs,
        artifacts=out / "artifacts",
        reuse=config.reuse,
        log=log,
    )
    (out / "report.json").write_text(json.dumps(report, indent=2, default=float))
    if "lora" in config.kinds and config.backends:
        data = {i: fix_splits(grouped[i], config.max_train_per_item, config.seed) for i in item_ids}
        _train_engine_artifacts(config, data, item_bank, log)
        report["engine"] = _engine_benchmarks(config, data, item_bank, log)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=float))
    (out / "report.md").write_text(render_markdown(report))
    return report


def _capped(examples: list[TrainExample], cap: int | None, seed: int) -> list[TrainExample]:
    if cap is None or len(examples) <= cap:
        return examples
    keep = sorted(random.Random(seed).sample(range(len(examples)), cap))
    return [examples[i] for i in keep]


def _train_engine_artifacts(
    config: BenchmarkConfig,
    data: dict[str, list[TrainExample]],
    item_bank: dict[str, ItemRecord],
    log: Callable[[str], None],
) -> None:
    """One lora artifact per item on the fixed split, for the engine measurements."""
    for item_id, examples in data.items():
        folder = config.out / "artifacts" / "lora" / item_id
        if config.reuse and (folder / "manifest.json").is_file():
            load_artifact(folder)
            continue
        trained = train_item(
            examples,
            item_id=item_id,
            num_labels=num_labels_for(item_bank.get(item_id), examples),
            out_dir=folder,
            backbone=config.backbone,
            config=_train_config("lora", config),
        )
        log(
            f"engine artifact {item_id} lora: test qwk={trained.metrics.get('qwk', float('nan')):.3f}"
        )


def _train_config(kind: str, config: BenchmarkConfig) -> TrainConfig:
    train_config = TrainConfig(kind=kind, seed=config.seed)
    if config.epochs:
        train_config.epochs = config.epochs
    return train_config


def _engine_benchmarks(
    config: BenchmarkConfig,
    data: dict[str, list[TrainExample]],
    item_bank: dict[str, ItemRecord],
    log: Callable[[str], None],
) -> dict[str, object]:
    rng = random.Random(config.seed)
    item_ids = sorted(data)
    tests = {i: [e for e in data[i] if e.split == "test" and e.text.strip()] for i in item_ids}
    # the mixed batch: round-robin over items so it spans as many items as it can
    mixed: list[ScoreRequest] = []
    pools = {i: rng.sample(tests[i], len(tests[i])) for i in item_ids}
    while len(mixed) < config.mixed_batch and any(pools.values()):
        for i in item_ids:
            if pools[i] and len(mixed) < config.mixed_batch:
                mixed.append(ScoreRequest(i, pools[i].pop().text))
    all_requests = [ScoreRequest(i, e.text) for i in item_ids for e in tests[i]]
    stream = rng.sample(all_requests, min(len(all_requests), config.throughput_answers))
    results: dict[str, object] = {
        "mixed_batch_answers": len(mixed),
        "mixed_batch_items": len({r.item_key for r in mixed}),
        "items_loaded": len(item_ids),
    }
    backends: dict[str, dict[str, object]] = {}
    for backend in config.backends:
        log(f"engine benchmark: {backend}")
        backends[backend] = _measure_backend(
            config, backend, item_ids, mixed, stream, tests, item_bank
        )
        log(
            json.dumps(
                {
                    k: round(v, 4) if isinstance(v, float) else v
                    for k, v in backends[backend].items()
                    if not isinstance(v, dict)
                }
            )
        )
    results["backends"] = backends
    fp32 = backends.get("onnx") or backends.get("torch")
    if "onnx-int8" in backends and fp32:
        results["int8_mean_qwk_shift"] = backends["onnx-int8"]["mean_qwk"] - fp32["mean_qwk"]  # type: ignore[index,operator]
    return results


def _measure_backend(
    config: BenchmarkConfig,
    backend: str,
    item_ids: Sequence[str],
    mixed: Sequence[ScoreRequest],
    stream: Sequence[ScoreRequest],
    tests: dict[str, list[TrainExample]],
    item_bank: dict[str, ItemRecord],
) -> dict[str, object]:
    """Cost, memory, latency and served QWK of one backend with every item's adapter loaded."""
    engine = ScoringEngine(config.backbone, backend=backend, cache_dir=config.onnx_cache)
    for i in item_ids:
        engine.load_item(i, config.out / "artifacts" / "lora" / i, "bench")
    resident = engine.resident_bytes()
    snapshot = engine._snapshot
    ids, mask = engine._pad(engine._tokenize([r.text for r in mixed]))
    index = np.array([snapshot.items[r.item_key].lora_slot for r in mixed], dtype=np.int64)
    encoder = engine._backend
    multi_s, plain_s = _interleaved(
        lambda: encoder.encode(ids, mask, index, snapshot.tables),
        lambda: encoder.encode_plain(ids, mask),
        config.repeats,
    )
    # end to end, tokenization included, with the engine's own length-sorted batching
    texts = [r.text for r in stream]
    score_s, plain_e2e_s = _interleaved(
        lambda: engine.score(stream),
        lambda: engine.encode_plain(texts),
        max(2, config.repeats // 5),
    )
    # one loop per path: alternating two runtimes call by call makes each one's idle spinning
    # threads compete with the other's work, which serving never does
    samples = stream[: config.latency_samples]
    latencies = _latencies(lambda request: engine.score([request]), samples)
    plain_latencies = _latencies(lambda request: engine.encode_plain([request.text]), samples)
    backbone_bytes = resident["backbone"]
    rss = measure_resident_memory(
        config.backbone,
        backend,
        {i: config.out / "artifacts" / "lora" / i for i in item_ids},
        [r.text for r in mixed],
        [r.item_key for r in mixed],
        cache_dir=config.onnx_cache,
    )
    return {
        "mixed_batch_seconds": multi_s,
        "plain_batch_seconds": plain_s,
        "mixed_batch_cost_ratio": multi_s / plain_s,
        "answers_per_second": len(stream) / score_s,
        "plain_answers_per_second": len(stream) / plain_e2e_s,
        "latency_p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "latency_p95_ms": 1000 * float(np.percentile(latencies, 95)),
        "plain_latency_p50_ms": 1000 * float(np.percentile(plain_latencies, 50)),
        "plain_latency_p95_ms": 1000 * float(np.percentile(plain_latencies, 95)),
        "backbone_bytes": backbone_bytes,
        "items_bytes": resident["items"],
        "bytes_per_item": resident["items"] / max(1, len(item_ids)),
        "resident_ratio": (backbone_bytes + resident["items"]) / backbone_bytes,
        "one_full_model_per_item_bytes": len(item_ids) * backbone_bytes,
        **rss,
        "rss_ratio": (rss["rss_backbone_bytes"] + rss["rss_items_bytes"])
        / rss["rss_backbone_bytes"],
        "threads": engine.threads,
        **_engine_quality(engine, tests, item_bank),
    }


def _latencies(
    call: Callable[[ScoreRequest], object], samples: Sequence[ScoreRequest]
) -> list[float]:
    """Seconds of one call per sample, after three warm-up calls."""
    for request in samples[:3]:
        call(request)
    timings = []
    for request in samples:
        start = time.perf_counter()
        call(request)
        timings.append(time.perf_counter() - start)
    return timings


def _rss_bytes() -> int:
    """Resident set size of this process (Linux ``/proc``; ``ru_maxrss`` elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _rss_probe(
    backbone: str | None,
    backend: str,
    artifacts: dict[str, str],
    texts: list[str],
    item_keys: list[str],
    cache_dir: Path | None = None,
) -> dict[str, int]:
    """Run in a fresh process: RSS after the backbone alone, then with every item loaded.

    Both states have scored the same batch three times (the first without adapters), so the
    runtime's buffers for activations are counted in both and the difference is what the items
    hold.
    """
    import gc

    engine = ScoringEngine(backbone, backend=backend, cache_dir=cache_dir)
    gc.collect()
    before = _rss_bytes()
    # runtimes grow their buffer pools over the first runs; measure both states once settled
    for _ in range(3):
        engine.embed(texts)
    gc.collect()
    backbone_only = _rss_bytes()
    for key, path in artifacts.items():
        engine.load_item(key, Path(path), "rss")
    requests = [ScoreRequest(k, t) for k, t in zip(item_keys, texts, strict=True)]
    for _ in range(3):
        engine.score(requests)
    gc.collect()
    with_items = _rss_bytes()
    measured = {
        "rss_process_before_backbone_bytes": before,
        "rss_backbone_bytes": backbone_only,
        "rss_items_bytes": with_items - backbone_only,
    }
    if engine._backend.device_type == "cuda":
        import torch

        # what the GPU holds for weights and tables (buffers of a pass are freed after it)
        torch.cuda.synchronize()
        measured["gpu_allocated_bytes"] = int(torch.cuda.memory_allocated())
        measured["gpu_peak_allocated_bytes"] = int(torch.cuda.max_memory_allocated())
    return measured


def measure_resident_memory(
    backbone: str | None,
    backend: str,
    artifacts: dict[str, Path],
    texts: Sequence[str],
    item_keys: Sequence[str],
    cache_dir: Path | None = None,
) -> dict[str, int]:
    """Process RSS of one engine with the backbone alone, and what loading ``artifacts`` adds.

    Measured in a fresh ``spawn`` process so that nothing this process holds is counted.
    ``rss_backbone_bytes`` is the whole process (interpreter, libraries, tokenizer, backbone and
    runtime buffers): the honest denominator for "the memory of the backbone alone".
    """
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(
            _rss_probe,
            backbone,
            backend,
            {k: str(v) for k, v in artifacts.items()},
            list(texts),
            list(item_keys),
            cache_dir,
        ).result()


def _engine_quality(
    engine: ScoringEngine, tests: dict[str, list[TrainExample]], item_bank: dict[str, ItemRecord]
) -> dict[str, object]:
    qwks: dict[str, float] = {}
    confusions: dict[str, list[list[int]]] = {}
    for item_id, examples in tests.items():
        if not examples:
            continue
        results = engine.score([ScoreRequest(item_id, e.text) for e in examples])
        predictions = [r.score if r.score is not None else 0 for r in results]
        labels = num_labels_for(item_bank.get(item_id), examples)
        truth = [e.label for e in examples]
        qwks[item_id] = classification_report(truth, predictions, num_labels=labels)["qwk"]
        confusions[item_id] = confusion_matrix(truth, predictions, labels).tolist()
    return {
        "mean_qwk": float(np.mean(list(qwks.values()))),
        "qwk_per_item": qwks,
        # rows: human score, columns: served score, on each item's test split
        "confusion_per_item": confusions,
    }


def _fmt(value: object, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def render_markdown(report: dict[str, object]) -> str:
    """The human-readable report: quality against the baseline, then the engine if measured."""
    quality: dict[str, object] = report["quality"]  # type: ignore[assignment]
    lines = [
        render_quality_markdown(quality, title="Scoring benchmark"),
        f"Backbone: `{report['backbone']}` ({report['backbone_fingerprint']})\n",
    ]
    engine = report.get("engine")
    if isinstance(engine, dict):
        lines.append(
            f"\n## Engine ({engine['items_loaded']} items loaded; mixed batch of {engine['mixed_batch_answers']} answers over {engine['mixed_batch_items']} items)\n"
        )
        lines += [
            "| backend | threads | mixed/plain cost | answers/s (plain) | p50 ms (plain) | p95 ms (plain) | weights MB | all items MB | per item KB | weights ratio | process RSS MB | items RSS MB | RSS ratio | one full model per item MB | mean QWK |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, b in engine["backends"].items():
            lines.append(
                f"| {name} | {b['threads']} | {b['mixed_batch_cost_ratio']:.3f} | {b['answers_per_second']:.0f} ({b['plain_answers_per_second']:.0f}) | "
                f"{b['latency_p50_ms']:.1f} ({b['plain_latency_p50_ms']:.1f}) | {b['latency_p95_ms']:.1f} ({b['plain_latency_p95_ms']:.1f}) | "
                f"{b['backbone_bytes'] / 1e6:.1f} | {b['items_bytes'] / 1e6:.2f} | {b['bytes_per_item'] / 1e3:.0f} | {b['resident_ratio']:.3f} | "
                f"{b['rss_backbone_bytes'] / 1e6:.0f} | {b['rss_items_bytes'] / 1e6:.1f} | {b['rss_ratio']:.3f} | "
                f"{b['one_full_model_per_item_bytes'] / 1e6:.0f} | {b['mean_qwk']:.3f} |"
            )
        lines.append(
            "\nweights: the backbone's weights as held by the backend, and the items' LoRA tables and "
            "heads; process RSS: a fresh process with the backbone loaded and one batch scored "
            "(interpreter, libraries and runtime buffers included), then what loading every item "
            "and scoring the mixed batch added."
        )
        served = {n: b.get("qwk_per_item", {}) for n, b in engine["backends"].items()}
        names = [n for n in served if served[n]]
        if names:
            lines += [
                "\n### Served QWK per item (test split, through the engine)\n",
                "| item | " + " | ".join(names) + " |",
                "|---|" + "---|" * len(names),
            ]
            for item_id in served[names[0]]:
                lines.append(
                    f"| {item_id} | "
                    + " | ".join(_fmt(served[n].get(item_id)) for n in names)
                    + " |"
                )
        if "int8_mean_qwk_shift" in engine:
            lines.append(f"\nint8 vs fp32 mean QWK shift: {engine['int8_mean_qwk_shift']:+.4f}")
    return "\n".join(lines) + "\n"
