"""Issue 15, item 5: admin pages for people. A version's metrics as a table with their
cross-validated 95% intervals, the confusion matrix, the training curve and the agreement curve,
progress as a bar, no raw JSON; an active version cannot be deleted; the item page says at a
glance how good its active model is and how many answers wait for review."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from ml_core.confidence import CURVE_KEY, ECE_KEY
from scoring_plugin.models import ModelVersion
from tests.factories import ItemFactory, ModelVersionFactory, SubmissionFactory
from tests.pages.test_admin_pages import _version_with_artifact

AUTO_METRICS = {
    "qwk": 0.712,
    "qwk_ci_low": 0.65,
    "qwk_ci_high": 0.774,
    "accuracy": 0.8,
    ECE_KEY: 0.041,
    "auto_fraction_at_threshold": 0.62,
    "inner_folds": 5.0,
    "n_train": 120.0,
    "confusion": [[5, 1, 0], [1, 4, 1], [0, 0, 6]],
    CURVE_KEY: [
        {"threshold": 0.0, "auto_fraction": 1.0, "agreement": 0.8},
        {"threshold": 0.5, "auto_fraction": 0.7, "agreement": 0.9},
        {"threshold": 0.8, "auto_fraction": 0.3, "agreement": 0.97},
    ],
}


@pytest.fixture(autouse=True)
def _artifacts(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"


def metric_table(html: str) -> dict[str, tuple[str, str]]:
    table = html.split('class="sb-metric-table"')[1].split("</table>")[0]
    rows = re.findall(
        r'<th scope="row">(.*?)</th><td class="sb-value">(.*?)</td>'
        r'<td class="sb-interval">(.*?)</td>',
        table,
    )
    return {label: (value, interval) for label, value, interval in rows}


def test_version_page_shows_metrics_with_intervals_charts_and_no_raw_json(
    staff_client, db, tmp_path
) -> None:
    item = ItemFactory(max_score=2)
    version = _version_with_artifact(item, tmp_path, 1, **AUTO_METRICS)
    version.kind = ModelVersion.Kind.AUTO
    version.save()
    html = staff_client.get(
        reverse("admin:scoring_plugin_modelversion_change", args=[version.pk])
    ).content.decode()
    table = metric_table(html)
    assert table["QWK"] == ("0.712", "0.650 – 0.774")
    assert table["exact agreement (accuracy)"] == ("0.800", "not measured")
    assert table["answers posted without review"] == ("0.620", "not measured")
    assert "cross-validated: 5 folds over 120 training answers" in html
    assert "sb-confusion" in html and "human 0, predicted 1: 1" in html
    assert "sb-curve" in html and "val_loss" in html  # the training curve
    assert "sb-automation" in html  # the agreement-vs-automation curve
    assert '"qwk_ci_low"' not in html and "{&quot;qwk" not in html  # no metrics JSON
    bar = re.search(r'<progress class="sb-progress-bar" max="100" value="(\d+)"', html)
    assert bar and bar.group(1) == "100"


def test_a_training_version_shows_its_progress_as_a_bar(staff_client, db) -> None:
    version = ModelVersionFactory(
        status=ModelVersion.Status.TRAINING,
        progress={"percent": 40.0, "epoch": 2, "epochs": 5, "val_loss": 0.8},
    )
    html = staff_client.get(
        reverse("admin:scoring_plugin_modelversion_change", args=[version.pk])
    ).content.decode()
    assert re.search(r'<progress class="sb-progress-bar" max="100" value="40"', html)
    assert "40%, epoch 2 of 5 (training)" in html
    assert "&quot;percent&quot;" not in html
    item_page = staff_client.get(
        reverse("admin:scoring_plugin_item_change", args=[version.item_id])
    ).content.decode()
    assert "40%, epoch 2 of 5 (training)" in item_page  # the versions inline


def test_item_page_says_how_good_the_active_model_is_and_how_many_answers_wait(
    staff_client, db, tmp_path
) -> None:
    item = ItemFactory(max_score=2, review_threshold=0.6)
    version = _version_with_artifact(item, tmp_path, 1, **AUTO_METRICS)
    version.is_active = True
    version.save()
    scored = {"status": "scored", "score": 1, "model_version": version, "item": item}
    SubmissionFactory(confidence=0.3, **scored)  # below the threshold
    SubmissionFactory(confidence=0.9, review_requested=True, **scored)  # the student asked
    SubmissionFactory(confidence=0.3, reviewed_score=2, **scored)  # already reviewed
    SubmissionFactory(confidence=0.9, **scored)  # posted automatically
    html = staff_client.get(
        reverse("admin:scoring_plugin_item_change", args=[item.pk])
    ).content.decode()
    glance = html.split('id="item-glance"')[1].split("</div>")[0]
    assert f"Active model: <strong>{version.label}</strong>" in glance
    assert "QWK 0.712 (95% CI 0.650 – 0.774)" in glance
    assert re.search(r'<strong class="sb-waiting">2</strong> of 4 answer\(s\) wait', glance)
    changelist = staff_client.get(reverse("admin:scoring_plugin_item_changelist")).content
    row = changelist.decode().split(f">{item.key}</a>")[1].split("</tr>")[0]
    assert "QWK 0.712 (95% CI 0.650 – 0.774)" in row and '<td class="field-waiting">2</td>' in row


def test_item_without_an_active_model_says_so(staff_client, db) -> None:
    item = ItemFactory()
    SubmissionFactory(item=item, status="queued")
    html = staff_client.get(
        reverse("admin:scoring_plugin_item_change", args=[item.pk])
    ).content.decode()
    glance = html.split('id="item-glance"')[1].split("</div>")[0]
    assert "No active model" in glance
    assert '<strong class="sb-waiting">0</strong> of 1 answer(s) wait' in glance


def test_the_active_version_cannot_be_deleted_in_admin(staff_client, db) -> None:
    active = ModelVersionFactory(is_active=True)
    spare = ModelVersionFactory(item=active.item, number=active.number + 1)
    delete_url = reverse("admin:scoring_plugin_modelversion_delete", args=[active.pk])
    assert staff_client.get(delete_url).status_code == 403
    assert staff_client.post(delete_url, {"post": "yes"}).status_code == 403
    page = staff_client.get(
        reverse("admin:scoring_plugin_modelversion_change", args=[active.pk])
    ).content.decode()
    assert 'class="deletelink"' not in page
    assert ModelVersion.objects.filter(pk=active.pk).exists()
    spare_url = reverse("admin:scoring_plugin_modelversion_delete", args=[spare.pk])
    assert staff_client.post(spare_url, {"post": "yes"}).status_code == 302
    assert not ModelVersion.objects.filter(pk=spare.pk).exists()
