"""Merging from admin to scores: "Merge (GW plan)" on items with full models creates inactive
merged versions with before/after metrics; activated, they score through the real scoring path,
a group's items in one call; rollback serves the unmerged model again and drops the group."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml_core.merge import runs as merge_runs
from ml_core.merge.group import GroupScorer
from queueing import dispatch
from scoring_plugin.artifact_store import version_folder
from scoring_plugin.model_cards import card_file_names
from scoring_plugin.models import Item, ModelVersion, Submission
from scoring_plugin.services import create_model_version, training_examples
from tests.factories import ItemFactory, SubmissionFactory, UserFactory
from tests.scoring.conftest import add_scored_answers
from workers import engine_host, merge_tasks, tasks

KEYS = ("net-a", "net-b", "net-c")


def _train(item: Item, kind: str) -> ModelVersion:
    version = create_model_version(item, kind)
    assert tasks.run_training(version, activate=True, examples=training_examples(item)) == "ready"
    version.refresh_from_db()
    return version


@pytest.fixture()
def full_items(db, scoring_settings) -> list[Item]:  # type: ignore[no-untyped-def]
    items = []
    for key in KEYS:
        item = ItemFactory(key=key)
        add_scored_answers(item, 36)
        _train(item, ModelVersion.Kind.FULL)
        items.append(item)
    return items


@pytest.fixture()
def admin_client(client):  # type: ignore[no-untyped-def]
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


@pytest.fixture()
def queued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[int], dict[str, object]]]:
    """What the admin sent to the training queue (after its transaction committed)."""
    sent: list[tuple[list[int], dict[str, object]]] = []
    monkeypatch.setattr(dispatch, "send_merge", lambda ids, options: sent.append((ids, options)))
    return sent


@pytest.fixture()
def start(admin_client, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    """Post "Merge (GW plan)" with its form for ``items``; returns the followed response."""

    def post(items: list[Item], **fields: object):  # type: ignore[no-untyped-def]
        data = {
            "action": "merge_gw",
            "_selected_action": [i.pk for i in items],
            "apply": "Start merging",
            "group_size": 3,
            "method": "",
            "feature_answers": 16,
            **fields,
        }
        with django_capture_on_commit_callbacks(execute=True):
            return admin_client.post("/admin/scoring_plugin/item/", data, follow=True)

    return post


def _held_groups() -> dict[str, dict[str, str]]:
    """Group folder -> {item: version label} of the merged groups this process serves."""
    return {
        str(Path(scorer.scorer.path).resolve()): dict(scorer.held())
        for scorer in engine_host.serving().scorers()
        if isinstance(getattr(scorer, "scorer", None), GroupScorer)
    }


def _score(*pairs: tuple[Item, str]) -> list[Submission]:
    rows = [SubmissionFactory(item=item, text=text) for item, text in pairs]
    tasks.score_submissions([str(r.pk) for r in rows])
    for row in rows:
        row.refresh_from_db()
    return rows


def _activate(admin_client, version: ModelVersion) -> None:  # type: ignore[no-untyped-def]
    admin_client.post(f"/admin/scoring_plugin/modelversion/{version.pk}/activate/")
    version.refresh_from_db()
    assert version.is_active


def test_admin_merges_and_the_activated_group_scores_then_rolls_back(
    full_items, admin_client, queued, start, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    sources = {i.key: i.active_version for i in full_items}
    page = admin_client.post(
        "/admin/scoring_plugin/item/",
        {"action": "merge_gw", "_selected_action": [i.pk for i in full_items]},
    )
    assert "Start merging" in page.content.decode()
    response = start(full_items)
    assert "Merge job merge-" in response.content.decode()
    ((ids, options),) = queued
    merged = {v.item.key: v for v in ModelVersion.objects.filter(pk__in=ids)}
    assert {v.status for v in merged.values()} == {"pending"}
    assert all(merged[k].parent == sources[k] for k in KEYS)

    assert merge_tasks.merge_model_versions(ids, options) == "ready"
    for key in KEYS:
        version = ModelVersion.objects.get(pk=merged[key].pk)
        merged[key] = version
        assert version.status == "ready" and not version.is_active
        assert Item.objects.get(key=key).active_version == sources[key]  # nothing activated
        metrics = version.metrics
        assert {"micro_f1", "macro_f1", "qwk", "accuracy", "n_test"} <= metrics.keys()
        assert {"micro_f1", "macro_f1", "qwk", "accuracy"} <= metrics["before"].keys()
        info = metrics["merge"]
        assert info["group_items"] == list(KEYS) and info["method"] == "ties"
        assert info["plan_source"] == "gw" and info["source_version"] == sources[key].label
        assert info["storage_before_bytes"] > 2.5 * info["storage_after_bytes"]
        assert version_folder(version) == Path(info["group_path"])

    a, b, c = (Item.objects.get(key=k) for k in KEYS)
    page = admin_client.get(f"/admin/scoring_plugin/modelversion/{merged['net-a'].pk}/change/")
    assert "Merged group" in page.content.decode() and "storage" in page.content.decode()
    heatmap = admin_client.get(
        f"/admin/scoring_plugin/modelversion/{merged['net-a'].pk}/merge-heatmap.png"
    )
    assert heatmap.status_code == 200 and b"".join(heatmap.streaming_content)[:4] == b"\x89PNG"

    # unmerged full models are served too (a group of one each)
    before = _score((a, "tcp udp"))
    assert before[0].status == "scored" and before[0].model_version == sources["net-a"]

    # activated: a and b come from the merged group, in one call; c from its own model
    _activate(admin_client, merged["net-a"])
    _activate(admin_client, merged["net-b"])
    calls: list[list[str]] = []
    original = GroupScorer.score_requests

    def spy(self, requests, versions=None):  # type: ignore[no-untyped-def]
        calls.append(sorted(r.item_key for r in requests))
        return original(self, requests, versions)

    monkeypatch.setattr(GroupScorer, "score_requests", spy)
    rows = _score((a, "tcp udp data"), (b, "udp"), (c, "tcp"), (a, "the network"))
    assert [r.status for r in rows] == ["scored"] * 4
    assert [r.model_version for r in rows] == [
        merged["net-a"],
        merged["net-b"],
        sources["net-c"],
        merged["net-a"],
    ]
    assert ["net-a", "net-a", "net-b"] in calls
    group = str(version_folder(merged["net-a"]).resolve())
    assert _held_groups()[group] == {
        "net-a": merged["net-a"].label,
        "net-b": merged["net-b"].label,
    }

    # roll back a (admin): its own model again; the group stays for b until b rolls back too
    admin_client.post(f"/admin/scoring_plugin/item/{a.pk}/rollback/")
    assert a.active_version == sources["net-a"]
    assert _score((a, "tcp"))[0].model_version == sources["net-a"]
    assert set(_held_groups()[group]) == {"net-b"}
    admin_client.post(f"/admin/scoring_plugin/item/{b.pk}/rollback/")
    assert engine_host.retire_inactive() == 1  # b got no answer since: the check drops it
    assert group not in _held_groups()
    assert _score((b, "udp"))[0].model_version == sources["net-b"]


def test_a_failed_merge_leaves_the_active_models_and_no_files(
    full_items, admin_client, queued, start
) -> None:  # type: ignore[no-untyped-def]
    sources = {i.key: i.active_version for i in full_items}
    start(full_items)
    ((ids, options),) = queued
    ModelVersion.objects.filter(pk=sources["net-b"].pk).update(artifact_key="nonexistent")
    assert merge_tasks.merge_model_versions(ids, options) == "failed"
    for version in ModelVersion.objects.filter(pk__in=ids):
        assert version.status == "failed" and "merge failed" in version.error
        assert version.item.active_version == sources[version.item.key]
    assert not (merge_tasks.merges_dir() / str(options["job"])).exists()
    assert merge_tasks.merge_model_versions(ids, options) == "not pending"  # redelivery


def test_a_merge_cancelled_while_running_creates_nothing(
    full_items, admin_client, queued, start, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    start(full_items)
    ((ids, options),) = queued
    # the worker's job runs ml_core's merge job: cancel while it merges a group
    real_merge = merge_runs.merge_group

    def cancel_then_merge(*args, **kwargs):  # type: ignore[no-untyped-def]
        admin_client.post(
            "/admin/scoring_plugin/modelversion/",
            {"action": "cancel", "_selected_action": [ids[0]]},
        )
        return real_merge(*args, **kwargs)

    monkeypatch.setattr(merge_runs, "merge_group", cancel_then_merge)
    assert merge_tasks.merge_model_versions(ids, options) == "cancelled"
    assert set(ModelVersion.objects.filter(pk__in=ids).values_list("status", flat=True)) == {
        "cancelled"
    }
    assert not (merge_tasks.merges_dir() / str(options["job"])).exists()
    assert all(i.active_version.kind == "full" for i in Item.objects.filter(key__in=KEYS))


def test_a_human_plan_is_checked_in_admin_and_followed(full_items, queued, start) -> None:  # type: ignore[no-untyped-def]
    bad = start(full_items, group_size=2, plan_text='[["net-a", "net-b", "net-c"]]')
    assert "at most 2" in bad.content.decode() and not queued
    plan = "item_id,group\nnet-a,1\nnet-c,1\nnet-b,2\n"
    start(full_items, group_size=2, plan_text=plan, method="average")
    ((ids, options),) = queued
    assert options["plan"] == [["net-a", "net-c"], ["net-b"]]
    assert merge_tasks.merge_model_versions(ids, options) == "ready"
    infos = {v.item.key: v.metrics["merge"] for v in ModelVersion.objects.filter(pk__in=ids)}
    assert infos["net-a"]["group_items"] == ["net-a", "net-c"]
    assert infos["net-b"]["group_items"] == ["net-b"]
    assert infos["net-a"]["plan_source"] == "human" and infos["net-a"]["method"] == "average"
    saved = json.loads((Path(infos["net-a"]["heatmap"]).parent / "plan.json").read_text())
    assert saved["groups"] == [["net-a", "net-c"], ["net-b"]]
    # every merged version has its own gaming check and model card beside its artifact; the
    # two items sharing a group folder each keep theirs there
    names = {}
    for version in ModelVersion.objects.filter(pk__in=ids):
        names[version.item.key] = card_file_names(version)
        card = json.loads((version_folder(version) / names[version.item.key][0]).read_text())
        assert card["model_version"] == version.label and card["kind"] == "merged"
        assert len(card["gaming_check"]["attacks"]) == 7
    assert names["net-a"][0] == "model_card.net-a.json" and names["net-b"][0] == "model_card.json"


def test_items_without_mergeable_models_are_refused(db, scoring_settings, queued, start) -> None:  # type: ignore[no-untyped-def]
    items = []
    for key in ("h-1", "h-2"):
        item = ItemFactory(key=key)
        add_scored_answers(item, 30)
        _train(item, ModelVersion.Kind.HEAD)
        items.append(item)
    page = start(items)
    assert "only full and LoRA models can be merged" in page.content.decode()
    assert not queued and not ModelVersion.objects.filter(kind="merged").exists()


def test_merged_lora_versions_are_served_by_the_shared_engine(
    db, scoring_settings, queued, start
) -> None:  # type: ignore[no-untyped-def]
    items = []
    for key in ("l-1", "l-2"):
        item = ItemFactory(key=key)
        add_scored_answers(item, 30)
        _train(item, ModelVersion.Kind.LORA)
        items.append(item)
    start(items, group_size=2)
    ((ids, options),) = queued
    assert options["method"] == "svd"
    assert merge_tasks.merge_model_versions(ids, options) == "ready"
    merged = ModelVersion.objects.get(pk=ids[0])
    assert merged.metrics["merge"]["method"] == "svd"
    assert version_folder(merged) != Path(merged.metrics["merge"]["group_path"])  # per item
    from scoring_plugin.services import activate_version

    activate_version(merged)
    (row,) = _score((merged.item, "tcp udp"))
    assert row.status == "scored" and row.model_version == merged
    assert engine_host.engine().loaded()[merged.item.key] == merged.label
    assert not _held_groups()


def test_merge_can_start_from_the_selected_active_versions(
    full_items, admin_client, queued, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    versions = [i.active_version.pk for i in full_items]
    page = admin_client.post(
        "/admin/scoring_plugin/modelversion/",
        {"action": "merge_gw", "_selected_action": versions},
    )
    assert "Start merging" in page.content.decode() and "net-c" in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            "/admin/scoring_plugin/modelversion/",
            {
                "action": "merge_gw",
                "_selected_action": versions,
                "apply": "Start merging",
                "group_size": 3,
                "feature_answers": 16,
            },
        )
    ((ids, _),) = queued
    merged = ModelVersion.objects.filter(pk__in=ids)
    assert sorted(v.parent_id for v in merged) == sorted(versions)
