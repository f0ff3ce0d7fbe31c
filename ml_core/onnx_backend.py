"""ONNX Runtime backend: the multi-item encoder exported once per backbone.

The graph takes ``input_ids``, ``attention_mask``, ``item_index`` and the stacked LoRA tables as
inputs, so loading, replacing or removing items never re-exports anything: the engine passes the
current tables with every run. A second, plain graph (backbone only) serves batches in which no
row has an adapter; only benchmarks load it (``encode_plain``): serving runs every batch through the
multi graph (slot 0 is a zero adapter), so the backbone's weights are held once.

``int8`` applies ONNX Runtime dynamic quantization to the weight matrices of ``MatMul`` nodes only
(``MatMulConstBOnly``), with one scale per output channel: per-tensor scales moved pooled vectors
of SAF answers to a mean cosine of 0.85 against fp32, per-channel scales to 0.99. The gathered
LoRA matrices and the word-embedding lookup stay fp32 (a quantized lookup dequantizes the whole
table on every run and saves only memory).

Exported graphs are cached under ``cache_dir`` (default ``~/.cache/scorebridge/onnx``)
in a folder named after the backbone fingerprint; they are written to a temporary name and
renamed, so concurrent workers never read half a file.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

from ml_core.backends import TABLE_DTYPE, EncoderBackend, LoraTables, pick_device
from ml_core.modeling import MultiItemEncoder, load_backbone_model

logger = logging.getLogger(__name__)

OPSET = 17
EXPORT_VERSION = 3
"""Bumped whenever the exported graphs' inputs or outputs change (names the cache folder)."""
_export_lock = threading.Lock()


def default_cache_dir() -> Path:
    """Where exported graphs are kept unless the caller names a folder (the web app passes
    ``SCORING_ONNX_CACHE``)."""
    return Path.home() / ".cache" / "scorebridge" / "onnx"


def _safe_name(fingerprint: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", fingerprint)


def graph_folder_name(fingerprint: str, pooling: str) -> str:
    """Cache sub-folder of one backbone's graphs (fingerprint, pooling, export version)."""
    return f"{_safe_name(fingerprint)}-{pooling}-v{EXPORT_VERSION}"


def export_encoder(
    resolved: str,
    out_dir: Path,
    *,
    pooling: str = "mean",
    quantize: bool = True,
    graphs: tuple[str, ...] = ("multi", "plain"),
) -> dict[str, Path]:
    """Export ``multi.onnx`` (LoRA tables as inputs) and/or ``plain.onnx``; optionally ``*.int8.onnx``.

    Returns the paths by name (``multi``, ``plain``, ``multi.int8``, ``plain.int8``); only the
    ``graphs`` asked for are written. Existing files are reused.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "multi": out_dir / "multi.onnx",
        "plain": out_dir / "plain.onnx",
        "multi.int8": out_dir / "multi.int8.onnx",
        "plain.int8": out_dir / "plain.int8.onnx",
    }
    with _export_lock:
        missing = [name for name in graphs if not paths[name].is_file()]
        if missing:
            # eager attention traces to plain MatMul/Softmax with the padding mask as data, which
            # every ONNX Runtime provider runs; sdpa's tracing path is less portable
            backbone = load_backbone_model(resolved)
            backbone.set_attn_implementation("eager")
            encoder = MultiItemEncoder(backbone, pooling=pooling).eval()
            for name in missing:
                _export(encoder, paths[name], with_tables=name == "multi")
        if quantize:
            for name in graphs:
                if not paths[f"{name}.int8"].is_file():
                    _quantize(paths[name], paths[f"{name}.int8"])
    return paths


def _export(encoder: MultiItemEncoder, path: Path, *, with_tables: bool) -> None:
    ids = torch.tensor([[101, 2000, 2001, 102], [101, 2002, 102, 0]], dtype=torch.long)
    ids = ids.clamp(max=int(encoder.backbone.config.vocab_size) - 1)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.long)
    names = ["input_ids", "attention_mask"]
    dynamic: dict[str, dict[int, str]] = {
        "input_ids": {0: "batch", 1: "tokens"},
        "attention_mask": {0: "batch", 1: "tokens"},
        "pooled": {0: "batch"},
    }
    args: tuple[torch.Tensor, ...] = (ids, mask)
    if with_tables:
        # non-zero example tables so nothing about the LoRA path is constant-folded away
        generator = torch.Generator().manual_seed(0)
        tables: list[torch.Tensor] = []
        for k, name in enumerate(encoder.module_names):
            fan_in, fan_out = encoder.module_shape(name)
            tables += [
                torch.randn((3, fan_in, 2), generator=generator).to(TABLE_DTYPE),
                torch.randn((3, 2, fan_out), generator=generator).to(TABLE_DTYPE),
            ]
            names += [f"lora_a_{k}", f"lora_b_{k}"]
            dynamic[f"lora_a_{k}"] = {0: "slots", 2: "rank"}
            dynamic[f"lora_b_{k}"] = {0: "slots", 1: "rank"}
        names.insert(2, "item_index")
        dynamic["item_index"] = {0: "batch"}
        args = (ids, mask, torch.tensor([1, 2], dtype=torch.long), *tables)
    staging = Path(tempfile.mkstemp(suffix=".onnx", dir=path.parent)[1])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                encoder,
                args,
                str(staging),
                input_names=names,
                output_names=["pooled"],
                dynamic_axes=dynamic,
                opset_version=OPSET,
                dynamo=False,
                do_constant_folding=True,
            )
        os.chmod(staging, 0o644)
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)


def _quantize(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    staging = Path(tempfile.mkstemp(suffix=".onnx", dir=target.parent)[1])
    try:
        quantize_dynamic(
            str(source),
            str(staging),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            # only weight matrices: activations x activations (attention, gathered LoRA) stay fp32
            extra_options={"MatMulConstBOnly": True},
        )
        os.chmod(staging, 0o644)
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)


class OnnxBackend(EncoderBackend):
    """ONNX Runtime sessions for the multi-item and plain graphs (fp32 or int8)."""

    def __init__(
        self,
        resolved: str,
        *,
        fingerprint: str,
        quantize: bool,
        device: str | None,
        threads: int,
        pooling: str,
        cache_dir: Path | None = None,
    ) -> None:
        import onnxruntime as ort

        folder = (cache_dir or default_cache_dir()) / graph_folder_name(fingerprint, pooling)
        # serving needs only the multi graph; the plain one is exported when a benchmark asks
        paths = export_encoder(
            resolved, folder, pooling=pooling, quantize=quantize, graphs=("multi",)
        )
        self._export_args = (resolved, folder, pooling, quantize)
        suffix = ".int8" if quantize else ""
        providers = ["CPUExecutionProvider"]
        if (
            pick_device(device).type == "cuda"
            and "CUDAExecutionProvider" in ort.get_available_providers()
        ):
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.multi = ort.InferenceSession(
            str(paths[f"multi{suffix}"]), options, providers=providers
        )
        self._plain_path = paths[f"plain{suffix}"]
        self._options = options
        self._providers = providers
        self._plain: ort.InferenceSession | None = None
        self._plain_lock = threading.Lock()
        self.providers = self.multi.get_providers()
        self.device_type = "cuda" if "CUDAExecutionProvider" in self.providers else "cpu"
        self.paths = paths
        self.quantized = quantize
        # module geometry comes from the torch module once; the graph inputs follow the same order
        probe = MultiItemEncoder(load_backbone_model(resolved), pooling=pooling)
        self.hidden_size = probe.hidden_size
        self.module_names = list(probe.module_names)
        self._shapes = {name: probe.module_shape(name) for name in self.module_names}
        del probe
        self._feeds: tuple[int, dict[str, np.ndarray]] = (0, {})
        self._file_bytes = paths[f"multi{suffix}"].stat().st_size

    def module_shape(self, name: str) -> tuple[int, int]:
        return self._shapes[name]

    def _table_feeds(self, tables: LoraTables) -> dict[str, np.ndarray]:
        version, feeds = self._feeds
        if version != tables.version:
            # .numpy() shares memory with the torch tables: no copy per table set or per run
            feeds = {}
            for k in range(len(self.module_names)):
                feeds[f"lora_a_{k}"] = tables.tensors[2 * k].numpy()
                feeds[f"lora_b_{k}"] = tables.tensors[2 * k + 1].numpy()
            self._feeds = (tables.version, feeds)
        return feeds

    def encode(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        item_index: np.ndarray,
        tables: LoraTables,
    ) -> np.ndarray:
        # rows without an adapter gather slot 0 (zeros): one session serves every batch
        feeds = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "item_index": item_index,
            **self._table_feeds(tables),
        }
        return np.asarray(self.multi.run(["pooled"], feeds)[0], dtype=np.float32)

    def encode_plain(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """The plain graph, loaded on first use (benchmarks compare against it; serving never does)."""
        if self._plain is None:
            import onnxruntime as ort

            with self._plain_lock:
                if self._plain is None:
                    resolved, folder, pooling, quantize = self._export_args
                    export_encoder(
                        resolved, folder, pooling=pooling, quantize=quantize, graphs=("plain",)
                    )
                    self._plain = ort.InferenceSession(
                        str(self._plain_path), self._options, providers=self._providers
                    )
        return np.asarray(
            self._plain.run(["pooled"], {"input_ids": input_ids, "attention_mask": attention_mask})[
                0
            ],
            dtype=np.float32,
        )

    def backbone_bytes(self) -> int:
        # the graph file size approximates the weights the session holds
        return int(self._file_bytes)
