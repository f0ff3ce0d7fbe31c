"""Fixtures for the Django side: a trained item, API clients (the tiny backbone: tests/conftest.py)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from scoring_plugin.models import Item, ModelVersion
from scoring_plugin.services import create_model_version, training_examples
from scoring_plugin.tokens import ApiToken
from tests.factories import ItemFactory, ScoredAnswerFactory, UserFactory
from workers import engine_host

# The shared tiny BERT (tests/conftest.py tiny_backbone): its vocabulary holds these words.
WORDS = "tcp udp the a is and not of to in has no yes because data layer network".split()


@pytest.fixture()
def scoring_settings(settings, tiny_backbone: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Settings pointing scoring at the tiny backbone and a fresh artifacts folder."""
    settings.SCORING_BACKBONE = str(tiny_backbone)
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    engine_host.reset()
    yield settings
    engine_host.reset()


def add_scored_answers(item: Item, count: int = 45) -> None:
    """Answers whose score is how many of 'tcp', 'udp' they name."""
    rng = random.Random(item.pk)
    fillers = [w for w in WORDS if w not in ("tcp", "udp")]
    for i in range(count):
        score = i % 3
        words = rng.sample(fillers, 4) + ["tcp", "udp"][:score]
        rng.shuffle(words)
        ScoredAnswerFactory(item=item, text=" ".join(words), score=score)


def train_active_version(item: Item) -> ModelVersion:
    """Train a head model for the item in-process and make it active."""
    from workers.tasks import run_training

    version = create_model_version(item, ModelVersion.Kind.HEAD)
    outcome = run_training(version, activate=True, examples=training_examples(item))
    assert outcome == "ready", version.error
    version.refresh_from_db()
    return version


@pytest.fixture()
def trained_item(db, scoring_settings) -> Item:  # type: ignore[no-untyped-def]
    item = ItemFactory(key="transport-protocols")
    add_scored_answers(item)
    train_active_version(item)
    return item


@pytest.fixture()
def api_user(db):  # type: ignore[no-untyped-def]
    return UserFactory(username="integration")


@pytest.fixture()
def api_client(api_user) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    _, key = ApiToken.create_for(api_user, "tests")
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A real SeaweedFS S3 server of this test session."""
    from tests.scoring.seaweed import seaweed_s3

    with seaweed_s3(tmp_path_factory.mktemp("seaweed")) as server:
        yield server


@pytest.fixture()
def s3_settings(scoring_settings, s3_server, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Scoring settings with the artifacts under this test's own prefix of the test S3 server."""
    from tests.scoring.seaweed import ACCESS_KEY, BUCKET, SECRET_KEY

    scoring_settings.ARTIFACT_STORE = f"s3://{BUCKET}/{tmp_path.name}/models"
    scoring_settings.ARTIFACT_CACHE_DIR = tmp_path / "cache"
    scoring_settings.S3_ENDPOINT_URL = s3_server.endpoint
    scoring_settings.S3_ACCESS_KEY_ID = ACCESS_KEY
    scoring_settings.S3_SECRET_ACCESS_KEY = SECRET_KEY
    return scoring_settings
