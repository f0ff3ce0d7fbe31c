"""The torch and ONNX Runtime backends give the same scores through the same engine interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ml_core.engine import ScoreRequest, ScoringEngine
from ml_core.training import TrainConfig, train_item
from tests.ml_core.conftest import make_examples

# fp32 graphs differ from torch only by kernel summation order; int8 rounds every weight matrix
FP32_TOLERANCE = 1e-4
INT8_TOLERANCE = 0.05
# probabilities through a half-precision forward on CUDA (bf16 keeps 8 mantissa bits, fp16 11)
HALF_TOLERANCE = {"float16": 5e-3, "bfloat16": 3e-2}


@pytest.fixture(scope="module")
def items(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("backend-items")
    paths = {}
    for seed, kind in enumerate(("lora", "lora", "head")):
        artifact = train_item(
            make_examples(45, seed=seed),
            item_id=f"i{seed}",
            num_labels=3,
            out_dir=out / f"i{seed}",
            backbone=str(tiny_backbone),
            config=TrainConfig(
                kind=kind, epochs=2, seed=seed, learning_rate=5e-2 if kind == "lora" else None
            ),
        )
        paths[f"i{seed}"] = artifact.path
    return paths


def _scores(engine: ScoringEngine, items: dict[str, Path]) -> np.ndarray:
    for key, path in items.items():
        engine.load_item(key, path, "v1")
    texts = [e.text for e in make_examples(18, seed=7)] + [
        "tcp",
        "udp header length checksum port tcp udp window",
    ]
    keys = [list(items)[i % len(items)] for i in range(len(texts))]
    results = engine.score([ScoreRequest(k, t) for k, t in zip(keys, texts, strict=False)])
    assert all(r.error is None for r in results)
    return np.array([r.probabilities for r in results])


@pytest.mark.parametrize(
    ("backend", "tolerance"), [("onnx", FP32_TOLERANCE), ("onnx-int8", INT8_TOLERANCE)]
)
def test_onnx_matches_torch_within_tolerance(
    tiny_backbone: Path, items: dict[str, Path], tmp_path: Path, backend: str, tolerance: float
) -> None:
    reference = _scores(ScoringEngine(str(tiny_backbone), device="cpu"), items)
    onnx_scores = _scores(
        ScoringEngine(str(tiny_backbone), backend=backend, device="cpu", cache_dir=tmp_path), items
    )
    np.testing.assert_allclose(onnx_scores, reference, atol=tolerance)


def test_auto_backend_serves_int8_on_cpu(
    tiny_backbone: Path, items: dict[str, Path], tmp_path: Path
) -> None:
    engine = ScoringEngine(str(tiny_backbone), backend="auto", device="cpu", cache_dir=tmp_path)
    assert engine.backend_name == "onnx-int8"
    reference = _scores(ScoringEngine(str(tiny_backbone), device="cpu"), items)
    np.testing.assert_allclose(_scores(engine, items), reference, atol=INT8_TOLERANCE)


def test_unknown_backend_is_refused(tiny_backbone: Path) -> None:
    with pytest.raises(ValueError, match="backend must be one of"):
        ScoringEngine(str(tiny_backbone), backend="tensorrt")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on GPU hosts)")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_cuda_half_precision_matches_cpu_fp32(
    tiny_backbone: Path, items: dict[str, Path], dtype: str
) -> None:
    reference = _scores(ScoringEngine(str(tiny_backbone), device="cpu"), items)
    gpu = ScoringEngine(str(tiny_backbone), backend="auto", device="cuda", gpu_dtype=dtype)
    assert gpu.backend_name == "torch"
    np.testing.assert_allclose(_scores(gpu, items), reference, atol=HALF_TOLERANCE[dtype])
