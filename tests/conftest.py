"""Fixtures every test folder shares (one definition each; folders add their own on top)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ml_core.conftest import make_tiny_backbone


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT built in-process; its word vocabulary holds every word the toy answers use."""
    return make_tiny_backbone(tmp_path_factory.mktemp("tiny-bert"))
