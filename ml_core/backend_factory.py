"""Choosing and building an encoder backend by name (torch, onnx, onnx-int8, auto).

Apart from :mod:`ml_core.backends` so that the interface module does not import the ONNX
backend that implements it: ``backend_factory -> {backends, onnx_backend} -> backends``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ml_core.backends import BACKENDS, EncoderBackend, TorchBackend, resolve_backend_name
from ml_core.onnx_backend import OnnxBackend

__all__ = ["create_backend"]


def create_backend(
    name: str,
    resolved: str,
    *,
    fingerprint: str,
    device: str | None,
    threads: int,
    pooling: str,
    cache_dir: Path | None = None,
    gpu_dtype: str = "float16",
) -> EncoderBackend:
    """Build the backend called ``name`` (one of :data:`BACKENDS`)."""
    name = resolve_backend_name(name, device)
    if name == "torch":
        if gpu_dtype not in ("float16", "bfloat16"):
            raise ValueError(f"gpu_dtype must be float16 or bfloat16, got {gpu_dtype!r}")
        return TorchBackend(
            resolved,
            device=device,
            threads=threads,
            pooling=pooling,
            dtype=getattr(torch, gpu_dtype),
        )
    if name in ("onnx", "onnx-int8"):
        return OnnxBackend(
            resolved,
            fingerprint=fingerprint,
            quantize=name == "onnx-int8",
            device=device,
            threads=threads,
            pooling=pooling,
            cache_dir=cache_dir,
        )
    raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
