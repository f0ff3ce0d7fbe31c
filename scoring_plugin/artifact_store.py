"""The configured artifact store (``ml_core.artifact_store``) and a version's local folder.

Everything that reads a model version's files goes through :func:`version_folder`: on a
machine with an S3 store it downloads the artifact once, verifies its hash and caches it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from ml_core.artifact_store import (
    ArtifactStore,
    ArtifactStoreError,
    LocalFolderStore,
    S3Location,
    S3Store,
)

if TYPE_CHECKING:
    from scoring_plugin.models import ModelVersion

_lock = threading.Lock()
_stores: dict[tuple[str, ...], ArtifactStore] = {}


def _config() -> tuple[str, ...]:
    return (
        settings.ARTIFACT_STORE,
        str(settings.ARTIFACTS_DIR),
        str(settings.ARTIFACT_CACHE_DIR),
        settings.S3_ENDPOINT_URL,
        settings.S3_REGION,
        settings.S3_ACCESS_KEY_ID,
        settings.S3_SECRET_ACCESS_KEY,
    )


def s3_client() -> object:
    """A boto3 S3 client for the configured endpoint and credentials."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=settings.S3_ENDPOINT_URL or None,
        region_name=settings.S3_REGION or None,
        aws_access_key_id=settings.S3_ACCESS_KEY_ID or None,
        aws_secret_access_key=settings.S3_SECRET_ACCESS_KEY or None,
    )


def store() -> ArtifactStore:
    """This process's store for the current settings (one per configuration)."""
    config = _config()
    with _lock:
        found = _stores.get(config)
        if found is None:
            if settings.ARTIFACT_STORE:
                found = S3Store(
                    S3Location.parse(settings.ARTIFACT_STORE),
                    s3_client(),
                    Path(settings.ARTIFACT_CACHE_DIR),
                    root=Path(settings.ARTIFACTS_DIR),
                )
            else:
                found = LocalFolderStore(Path(settings.ARTIFACTS_DIR))
            _stores[config] = found
        return found


def publish(local_dir: Path) -> tuple[str, str]:
    """Store a folder written under ARTIFACTS_DIR; returns ``(key, hash)`` for the version."""
    return store().put_folder(Path(local_dir))


def publish_documents(version: ModelVersion, files: dict[str, bytes]) -> None:
    """Store documents (the model card) beside the version's artifact, in whichever store."""
    if not version.artifact_key:
        raise ArtifactStoreError(f"{version} has no artifact")
    store().put_documents(version.artifact_key, files)


def version_folder(version: ModelVersion) -> Path:
    """The version's artifact as a verified local folder (fetched and cached when remote)."""
    if not version.artifact_key:
        raise ArtifactStoreError(f"{version} has no artifact")
    return store().fetch(version.artifact_key, version.artifact_hash)


def version_folder_or_none(version: ModelVersion) -> Path | None:
    """:func:`version_folder`, or None when it cannot be had (pages that show what exists)."""
    try:
        return version_folder(version)
    except (ArtifactStoreError, OSError):
        return None
    except Exception as exc:  # botocore's errors: a store away must not break a page
        if type(exc).__module__.startswith("botocore"):
            return None
        raise


def evict_unneeded() -> int:
    """Drop cached artifacts that no active version needs; returns how many."""
    from scoring_plugin.models import ModelVersion

    keep = ModelVersion.objects.filter(is_active=True).values_list("artifact_hash", flat=True)
    return store().evict_except([h for h in keep if h])
