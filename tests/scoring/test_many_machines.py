"""Issue 19, item 2: scoring workers on several machines share only the broker (Redis), the
database and the object store (a real SeaweedFS S3 server); each has its own var folder and
artifact cache, as two machines would. A training worker trains and activates a version; both
scoring workers serve it without a restart; a burst split over both loses nothing when one of
them is SIGKILLed.

Redis is REDIS_URL when set, else a private ``redis-server`` of this test; the database is the
test database (PostgreSQL when DATABASE_URL names one).
"""

from __future__ import annotations

import os
import shutil
import signal
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from scoring_plugin.models import Item, ModelVersion, Submission
from scoring_plugin.services import start_training
from tests.factories import ItemFactory
from tests.scoring.conftest import add_scored_answers
from tests.scoring.realworker import (
    PrivateRedis,
    broker,
    post_batch,
    scoring_writes,
    tail,
    wait_for,
    wait_until_finished,
    worker_process,
)
from tests.scoring.seaweed import ACCESS_KEY, BUCKET, SECRET_KEY
from tests.scoring.test_worker_outages import sweeper

REDIS_SERVER = shutil.which("redis-server")


@contextmanager
def redis_broker(tmp_path: Path) -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    if REDIS_SERVER is None:
        pytest.fail("neither REDIS_URL nor redis-server: this test needs a Redis broker")
    (tmp_path / "redis").mkdir()
    redis = PrivateRedis(REDIS_SERVER, tmp_path / "redis", tmp_path / "redis.log")
    redis.start()
    try:
        yield redis.url
    finally:
        redis.kill()


def machine(root: Path, s3_endpoint: str, store: str) -> dict[str, str]:
    """The variables of one machine: its own var folder and cache, the shared object store."""
    root.mkdir(parents=True)
    return {
        "SCOREBRIDGE_VAR_DIR": str(root / "var"),
        "SCOREBRIDGE_ARTIFACTS_DIR": str(root / "var" / "artifacts"),
        "SCOREBRIDGE_ARTIFACT_CACHE_DIR": str(root / "cache"),
        "SCOREBRIDGE_ARTIFACT_STORE": store,
        "SCOREBRIDGE_S3_ENDPOINT_URL": s3_endpoint,
        "SCOREBRIDGE_S3_ACCESS_KEY_ID": ACCESS_KEY,
        "SCOREBRIDGE_S3_SECRET_ACCESS_KEY": SECRET_KEY,
    }


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_two_scoring_machines_serve_a_new_version_and_survive_one_killed(
    scoring_settings, s3_server, api_client, tiny_backbone: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    store = f"s3://{BUCKET}/{tmp_path.name}/models"
    trainer, one, two = (
        machine(tmp_path / name, s3_server.endpoint, store) for name in ("trainer", "m1", "m2")
    )
    logs = {name: tmp_path / f"{name}.log" for name in ("trainer", "m1", "m2")}
    item = ItemFactory(key="transport-protocols")
    add_scored_answers(item)
    sweep = sweeper(scoring_settings)

    with redis_broker(tmp_path) as url, broker(url), ExitStack() as machines:
        machines.enter_context(
            worker_process(url, tiny_backbone, logs["trainer"], env=trainer, queues="training")
        )
        first = machines.enter_context(
            worker_process(url, tiny_backbone, logs["m1"], env=one, queues="scoring")
        )
        second = machines.enter_context(
            worker_process(url, tiny_backbone, logs["m2"], env=two, queues="scoring")
        )

        # train and activate on the training machine; the scoring machines run all along
        version = start_training(item, ModelVersion.Kind.HEAD)

        def trained() -> bool:
            version.refresh_from_db()
            return version.status in ("ready", "failed")

        wait_for(trained, 600, "training on the training machine", logs["trainer"])
        assert version.status == "ready" and version.is_active, version.error
        assert version.artifact_key == f"{item.key}/v1-head" and version.artifact_hash

        # both scoring machines serve it, without a restart
        ids: list[str] = []
        for round_number in range(8):
            batch = post_batch(
                api_client, item.key, [f"tcp udp {round_number} {i}" for i in range(24)]
            )
            ids += batch
            wait_until_finished(batch, 180, logs["m1"])
            if all(scoring_writes(logs[m]) for m in ("m1", "m2")):
                break
        assert scoring_writes(logs["m1"]) and scoring_writes(logs["m2"]), "one machine idle"
        rows = Submission.objects.filter(pk__in=ids)
        assert {r.status for r in rows} == {"scored"}
        assert {r.model_version_id for r in rows} == {version.pk}
        digest = version.artifact_hash.removeprefix("sha256:")
        for env in (one, two):  # fetched from the store into each machine's own cache
            assert (Path(env["SCOREBRIDGE_ARTIFACT_CACHE_DIR"]) / digest).is_dir()
            assert not (Path(env["SCOREBRIDGE_VAR_DIR"]) / "artifacts" / item.key).exists()

        # a burst over both; one machine dies mid-burst (SIGKILL, parent and pool process)
        burst = [
            pk
            for part in range(2)  # the batch API takes at most 100 answers per request
            for pk in post_batch(api_client, item.key, [f"udp data {part} {i}" for i in range(75)])
        ]
        wait_for(
            lambda: Submission.objects.filter(pk__in=burst, status="scored").exists(),
            120,
            "the burst to start",
            logs["m1"],
        )
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        wait_until_finished(burst, 300, logs["m2"], between_polls=sweep)
        assert second.poll() is None, tail(logs["m2"])

    rows = list(Submission.objects.filter(pk__in=burst))
    assert len(rows) == 150
    assert {r.status for r in rows} == {"scored"}, [r.error for r in rows if r.error]
    writes: Counter[str] = scoring_writes(logs["m1"]) + scoring_writes(logs["m2"])
    twice = {pk: writes[pk] for pk in burst if writes[pk] > 1}
    assert not twice, f"scored more than once: {twice}"
    assert Item.objects.get(pk=item.pk).active_version == version
