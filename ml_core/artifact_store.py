"""Model artifacts in shared storage, named by a storage key and verified by a content hash.

A version's artifact is a folder. :meth:`ArtifactStore.put_folder` stores it under a key (a
relative path such as ``item-1/v3-auto``) and returns its content hash; :meth:`ArtifactStore.fetch`
gives a local folder holding exactly that content, verified against the hash. Two backends:

* :class:`LocalFolderStore`: the folders live under one root (the default, one machine, or a
  shared file system); fetching verifies the folder in place.
* :class:`S3Store`: the files are objects under ``s3://bucket/prefix/<key>/``; fetching
  downloads them once into a local cache folder named by the hash, verifies them, and reuses
  them until :meth:`S3Store.evict_except` drops what no active version needs.

A fetched folder is verified once per process (loading a model costs more than hashing it);
a corrupted cached copy is dropped and downloaded again, a corrupted stored object is refused.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import urlparse

logger = logging.getLogger(__name__)

HASH_PREFIX = "sha256:"
# Written beside the model after its hash is taken (documentation, never loaded): the model
# card, or one card per item (``model_card.<item>.json``) in a folder several versions share.
UNHASHED_FILES = frozenset({"model_card.json", "model_card.md"})
_DOCUMENT = re.compile(r"^model_card(\.[A-Za-z0-9][A-Za-z0-9._-]*)?\.(json|md)$")


def is_document(name: str) -> bool:
    """Whether a file name is a document stored beside an artifact (not part of its hash)."""
    return name in UNHASHED_FILES or bool(_DOCUMENT.match(name))


_CHUNK = 1 << 20


class ArtifactStoreError(Exception):
    """An artifact is missing, malformed or does not match its hash."""


def artifact_files(folder: Path) -> list[str]:
    """The folder's hashed files as sorted POSIX paths relative to it."""
    names = []
    for path in folder.rglob("*"):
        if path.is_file() and not is_document(path.name):
            names.append(path.relative_to(folder).as_posix())
    return sorted(names)


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def folder_manifest(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of each hashed file in ``folder``."""
    return {name: file_hash(folder / name) for name in artifact_files(folder)}


def manifest_hash(manifest: Mapping[str, str]) -> str:
    """``sha256:<hex>`` over the lines ``<file sha256>  <relative path>`` in path order."""
    lines = "".join(f"{manifest[name]}  {name}\n" for name in sorted(manifest))
    return HASH_PREFIX + hashlib.sha256(lines.encode()).hexdigest()


def folder_hash(folder: Path) -> str:
    """The content hash of an artifact folder (file names and bytes; model cards excluded)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ArtifactStoreError(f"artifact folder {folder} does not exist")
    return manifest_hash(folder_manifest(folder))


def check_key(key: str) -> str:
    """A storage key: a relative POSIX path without '..' (never an absolute path)."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or ".." in path.parts or "\\" in key:
        raise ArtifactStoreError(f"{key!r} is not an artifact storage key (a relative path)")
    return path.as_posix()


class ArtifactStore(Protocol):
    """Where model artifacts live; see the module docstring."""

    def put_folder(self, local_dir: Path, key: str | None = None) -> tuple[str, str]:
        """Store ``local_dir`` under ``key`` (default: its path relative to the store's root,
        for a folder written there); returns ``(key, hash)``."""
        ...

    def fetch(self, key: str, content_hash: str) -> Path:
        """A local folder holding the artifact, verified against ``content_hash``."""
        ...

    def evict_except(self, keep: Iterable[str]) -> int:
        """Drop local copies whose hash is not in ``keep``; returns how many."""
        ...

    def put_documents(self, key: str, files: Mapping[str, bytes]) -> None:
        """Store documents (``is_document`` names: model cards) beside the artifact under
        ``key``, where they travel with it; its hash does not change."""
        ...


def _check_documents(files: Mapping[str, bytes]) -> None:
    wrong = [name for name in files if not is_document(name)]
    if wrong:
        raise ArtifactStoreError(f"{wrong[0]!r} is not a document name (model_card[.<item>].md)")


@dataclass
class _Verified:
    """Folders verified by this process: (key, hash) -> local folder."""

    folders: dict[tuple[str, str], Path] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: str, content_hash: str) -> Path | None:
        folder = self.folders.get((key, content_hash))
        return folder if folder is not None and folder.is_dir() else None


class LocalFolderStore:
    """Artifacts as folders under ``root`` (``SCOREBRIDGE_ARTIFACTS_DIR``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._verified = _Verified()

    def key_for(self, local_dir: Path) -> str:
        try:
            return check_key(Path(local_dir).resolve().relative_to(self.root.resolve()).as_posix())
        except ValueError as exc:
            raise ArtifactStoreError(f"{local_dir} is not under {self.root}; give a key") from exc

    def put_folder(self, local_dir: Path, key: str | None = None) -> tuple[str, str]:
        local_dir = Path(local_dir)
        key = check_key(key) if key is not None else self.key_for(local_dir)
        target = self.root / key
        if target.resolve() != local_dir.resolve():
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(local_dir, target)
        return key, folder_hash(target)

    def fetch(self, key: str, content_hash: str) -> Path:
        folder = self._verified.get(key, content_hash)
        if folder is not None:
            return folder
        folder = self.root / check_key(key)
        if not folder.is_dir():
            raise ArtifactStoreError(f"artifact {key!r} is not in {self.root}")
        if content_hash:  # rows migrated from a folder that was already gone have none
            actual = folder_hash(folder)
            if actual != content_hash:
                raise ArtifactStoreError(
                    f"artifact {key!r} does not match its hash ({actual} != {content_hash})"
                )
        with self._verified.lock:
            self._verified.folders[(key, content_hash)] = folder
        return folder

    def evict_except(self, keep: Iterable[str]) -> int:
        return 0  # the folders are the store itself, not a cache

    def put_documents(self, key: str, files: Mapping[str, bytes]) -> None:
        _check_documents(files)
        folder = self.root / check_key(key)
        if not folder.is_dir():
            raise ArtifactStoreError(f"artifact {key!r} is not in {self.root}")
        for name, data in files.items():
            (folder / name).write_bytes(data)


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """``s3://bucket/optional/prefix``; ValueError when malformed."""
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc or parsed.query or parsed.fragment:
            raise ValueError(f"{url!r} is not s3://bucket/prefix")
        return cls(parsed.netloc, parsed.path.strip("/"))

    def object_key(self, key: str, name: str = "") -> str:
        parts = [p for p in (self.prefix, key, name) if p]
        return "/".join(parts)


class S3Store:
    """Artifacts as objects in an S3-compatible store, cached locally per content hash.

    ``client`` is a boto3 S3 client (``boto3.client("s3", endpoint_url=...)``); ``root`` is
    the local folder training writes into (keys of :meth:`put_folder` are relative to it).
    """

    def __init__(
        self, location: S3Location, client: object, cache_dir: Path, root: Path | None = None
    ) -> None:
        self.location = location
        self.client = client
        self.cache_dir = Path(cache_dir)
        self.root = Path(root) if root is not None else None
        self._verified = _Verified()

    def put_folder(self, local_dir: Path, key: str | None = None) -> tuple[str, str]:
        local_dir = Path(local_dir)
        if key is None:
            if self.root is None:
                raise ArtifactStoreError("give a key: this store has no local root")
            key = LocalFolderStore(self.root).key_for(local_dir)
        key = check_key(key)
        manifest = folder_manifest(local_dir)
        if not manifest:
            raise ArtifactStoreError(f"artifact folder {local_dir} holds no files")
        for name in manifest:
            self.client.upload_file(  # type: ignore[attr-defined]
                str(local_dir / name), self.location.bucket, self.location.object_key(key, name)
            )
        return key, manifest_hash(manifest)

    def put_documents(self, key: str, files: Mapping[str, bytes]) -> None:
        """Uploaded beside the artifact's objects, and written into the local copies this
        machine holds (the training folder, verified cache folders of ``key``)."""
        _check_documents(files)
        key = check_key(key)
        local = [self.root / key] if self.root is not None else []
        local += [f for (k, _), f in self._verified.folders.items() if k == key]
        for name, data in files.items():
            self.client.put_object(  # type: ignore[attr-defined]
                Bucket=self.location.bucket, Key=self.location.object_key(key, name), Body=data
            )
            for folder in local:
                if folder.is_dir():
                    (folder / name).write_bytes(data)

    def _cached(self, content_hash: str) -> Path:
        digest = content_hash.removeprefix(HASH_PREFIX)
        if not digest or not all(c in "0123456789abcdef" for c in digest):
            raise ArtifactStoreError(f"{content_hash!r} is not an artifact hash")
        return self.cache_dir / digest

    def fetch(self, key: str, content_hash: str) -> Path:
        folder = self._verified.get(key, content_hash)
        if folder is not None:
            return folder
        key = check_key(key)
        folder = self._cached(content_hash)
        if folder.is_dir():
            if folder_hash(folder) == content_hash:
                with self._verified.lock:
                    self._verified.folders[(key, content_hash)] = folder
                return folder
            logger.warning("cached artifact %s is corrupted; fetching it again", folder)
            shutil.rmtree(folder, ignore_errors=True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=self.cache_dir))
        try:
            self._download(key, staging)
            actual = folder_hash(staging)
            if actual != content_hash:
                raise ArtifactStoreError(
                    f"stored artifact {key!r} does not match its hash ({actual} != {content_hash})"
                )
            try:
                os.rename(staging, folder)
            except OSError:  # another process of this machine fetched it meanwhile
                if not folder.is_dir():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        with self._verified.lock:
            self._verified.folders[(key, content_hash)] = folder
        return folder

    def _download(self, key: str, target: Path) -> None:
        prefix = self.location.object_key(key) + "/"
        paginator = self.client.get_paginator("list_objects_v2")  # type: ignore[attr-defined]
        found = 0
        for page in paginator.paginate(Bucket=self.location.bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                name = check_key(entry["Key"][len(prefix) :])
                destination = target / name
                destination.parent.mkdir(parents=True, exist_ok=True)
                self.client.download_file(  # type: ignore[attr-defined]
                    self.location.bucket, entry["Key"], str(destination)
                )
                found += 1
        if not found:
            raise ArtifactStoreError(f"artifact {key!r} is not in s3://{self.location.bucket}")

    def evict_except(self, keep: Iterable[str]) -> int:
        wanted = {h.removeprefix(HASH_PREFIX) for h in keep}
        if not self.cache_dir.is_dir():
            return 0
        evicted = 0
        for folder in self.cache_dir.iterdir():
            if folder.is_dir() and not folder.name.startswith(".") and folder.name not in wanted:
                shutil.rmtree(folder, ignore_errors=True)
                evicted += 1
        with self._verified.lock:
            self._verified.folders = {k: v for k, v in self._verified.folders.items() if v.is_dir()}
        return evicted
