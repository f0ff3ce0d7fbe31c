"""Issue 12, finding 4: migration 0004 turns existing non-slug item keys into slugs safely."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("scoring_plugin", "0003_review_audit")]
AFTER = [("scoring_plugin", "0004_stable_items_waiting_answers")]


@pytest.mark.django_db(transaction=True)
def test_non_slug_item_keys_become_unique_slugs_and_versions_record_their_classes() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    Item = old.get_model("scoring_plugin", "Item")
    ModelVersion = old.get_model("scoring_plugin", "ModelVersion")

    def item(key: str, max_score: int = 2):  # type: ignore[no-untyped-def]
        return Item.objects.create(key=key, prompt="P", max_score=max_score)

    keep = item("saf-en-10.1_TC")
    slash = item("unit 1/q 2")
    clash = item("unit-1-q-2")  # already the slug the first one would get
    odd = item("/?!", max_score=3)
    ModelVersion.objects.create(item=odd, number=1, status="ready", is_active=True)
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        new = executor.loader.project_state(AFTER).apps
        rows = new.get_model("scoring_plugin", "Item").objects
        keys = dict(rows.values_list("pk", "key"))
        legacy = dict(rows.values_list("pk", "legacy_key"))
        version = new.get_model("scoring_plugin", "ModelVersion").objects.get(item_id=odd.pk)
    finally:
        MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes())
    assert keys[keep.pk] == "saf-en-10.1_TC"
    assert keys[clash.pk] == "unit-1-q-2"
    assert keys[slash.pk] == "unit-1-q-2-2"
    assert keys[odd.pk] == "item"
    assert len(set(keys.values())) == len(keys)
    # The old key is kept: a launch from an LMS link that names it finds the item.
    assert (legacy[slash.pk], legacy[odd.pk], legacy[keep.pk]) == ("unit 1/q 2", "/?!", "")
    assert version.num_labels == 4
