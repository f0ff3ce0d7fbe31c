"""The on-disk artifact of one trained item: ``manifest.json`` plus ``weights.safetensors``.

An artifact is a small versioned folder. ``manifest.json`` says which backbone it belongs to
(id and hash), the kind (``lora``, ``head``, ``full``), the criteria with their score labels,
the LoRA geometry, the pooling, the training config and the test metrics. Tensors are named:

- ``head.<i>.weight`` / ``head.<i>.bias`` for criterion ``i`` (``[num_labels, hidden]``),
- ``lora.<module>.A`` (``[r, in]``) / ``lora.<module>.B`` (``[out, r]``) for ``lora`` artifacts,
  ``<module>`` being the dotted module name inside the backbone (e.g.
  ``encoder.layer.0.attention.self.query``); the scaling ``alpha / r`` is not folded in,
- ``backbone.<param>`` for ``full`` artifacts (the whole fine-tuned backbone).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

FORMAT_VERSION: int = 1
MANIFEST_FILE = "manifest.json"
WEIGHTS_FILE = "weights.safetensors"
KINDS: tuple[str, ...] = ("lora", "head", "full")
"""Kinds that :func:`ml_core.training.train_item` trains (torch heads/adapters/backbones)."""
AUTO_KIND = "auto"
"""The issue-13 default kind, trained by :func:`ml_core.auto.train_auto`, served by ``AutoModel``."""
ARTIFACT_KINDS: tuple[str, ...] = (*KINDS, AUTO_KIND)


class ArtifactError(ValueError):
    """An artifact folder is missing, malformed, or of an unsupported format version."""


class BackboneMismatchError(ArtifactError):
    """An artifact was trained on another backbone than the one asked to use it."""


@dataclass(frozen=True)
class Criterion:
    """One scored criterion of an item: its name and the score value of each class index."""

    name: str
    labels: tuple[int, ...]

    @property
    def num_labels(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Artifact:
    """A loaded artifact: manifest fields plus its tensors (on CPU, fp32)."""

    path: Path
    item_id: str
    kind: str
    backbone: str
    backbone_fingerprint: str
    criteria: tuple[Criterion, ...]
    pooling: str
    lora_r: int
    lora_alpha: float
    metrics: dict[str, float]
    manifest: dict[str, object]
    tensors: dict[str, torch.Tensor] = field(repr=False)

    def head_tensors(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight ``[num_labels, hidden]`` and bias ``[num_labels]`` of criterion ``index``."""
        return self.tensors[f"head.{index}.weight"], self.tensors[f"head.{index}.bias"]

    def lora_modules(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Module name -> (A ``[r, in]``, B ``[out, r]``), unscaled."""
        out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for name, tensor in self.tensors.items():
            if name.startswith("lora.") and name.endswith(".A"):
                module = name[len("lora.") : -len(".A")]
                out[module] = (tensor, self.tensors[f"lora.{module}.B"])
        return out

    def check_backbone(self, fingerprint: str) -> None:
        """Raise :class:`BackboneMismatchError` unless the artifact was made for ``fingerprint``."""
        if self.backbone_fingerprint != fingerprint:
            raise BackboneMismatchError(
                f"artifact {self.path} (item {self.item_id!r}) was trained on backbone "
                f"{self.backbone_fingerprint}, but this engine runs {fingerprint}; retrain the "
                "item on this backbone or serve it with the matching backbone"
            )


def write_artifact(
    out_dir: Path,
    manifest: dict[str, object],
    tensors: dict[str, torch.Tensor],
    extra_files: Mapping[str, str] | None = None,
) -> int:
    """Write the artifact atomically to ``out_dir`` (replacing it) and return its size in bytes.

    Written next to ``out_dir`` first and renamed, so a reader never sees a half-written folder
    and re-running a training task replaces its earlier output. ``extra_files`` (file name ->
    text) are written into the folder too (e.g. an ``auto`` artifact's vocabulary JSON).
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    manifest = {"format_version": FORMAT_VERSION, **manifest}
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in tensors.items()},
            str(staging / WEIGHTS_FILE),
        )
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        for name, text in (extra_files or {}).items():
            if "/" in name or name in (MANIFEST_FILE, WEIGHTS_FILE):
                raise ValueError(f"extra artifact file name {name!r} is not allowed")
            (staging / name).write_text(text, encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sum(f.stat().st_size for f in out_dir.iterdir() if f.is_file())


def read_manifest(path: Path) -> dict[str, object]:
    """Read and version-check ``manifest.json`` of the artifact at ``path``."""
    manifest_path = Path(path) / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ArtifactError(f"{path} is not an artifact folder (no {MANIFEST_FILE})")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{manifest_path} is not valid JSON: {exc}") from exc
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{path} has artifact format version {version!r}; this code reads version {FORMAT_VERSION}"
        )
    return dict(manifest)


def load_artifact(path: Path) -> Artifact:
    """Load an artifact folder written by :func:`write_artifact`."""
    path = Path(path)
    manifest = read_manifest(path)
    try:
        raw_criteria = manifest["criteria"]
        lora = manifest.get("lora") or {}
        metrics = manifest.get("metrics") or {}
        if (
            not isinstance(raw_criteria, list)
            or not isinstance(lora, dict)
            or not isinstance(metrics, dict)
        ):
            raise ArtifactError(f"artifact {path}: criteria, lora or metrics have the wrong type")
        criteria = tuple(
            Criterion(name=str(c["name"]), labels=tuple(int(v) for v in c["labels"]))
            for c in raw_criteria
        )
        artifact = Artifact(
            path=path,
            item_id=str(manifest["item_id"]),
            kind=str(manifest["kind"]),
            backbone=str(manifest["backbone"]),
            backbone_fingerprint=str(manifest["backbone_fingerprint"]),
            criteria=criteria,
            pooling=str(manifest.get("pooling", "mean")),
            lora_r=int(lora.get("r", 0)),
            lora_alpha=float(lora.get("alpha", 0.0)),
            metrics={str(k): float(v) for k, v in metrics.items()},
            manifest=manifest,
            tensors=load_file(str(path / WEIGHTS_FILE)),
        )
    except (KeyError, TypeError, ValueError, OSError) as exc:
        if isinstance(exc, ArtifactError):
            raise
        raise ArtifactError(f"artifact {path} is malformed: {exc}") from exc
    if artifact.kind not in ARTIFACT_KINDS:
        raise ArtifactError(f"artifact {path} has unknown kind {artifact.kind!r}")
    return artifact
