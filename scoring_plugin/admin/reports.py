"""What the item and version pages render for people: metrics, confusion matrix, training
curve, agreement-versus-automation curve, merge results, and the progress poller's JSON."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.utils.html import format_html

from ml_core.confidence import CURVE_KEY, CURVE_SOURCE_KEY, ECE_KEY
from scoring_plugin import charts, review
from scoring_plugin.models import Item, ModelVersion, Submission

METRIC_LABELS = (
    ("qwk", "QWK"),
    ("accuracy", "exact agreement (accuracy)"),
    ("macro_f1", "macro F1"),
    ("micro_f1", "micro F1"),
    ("qwk_pooled", "QWK (all held-out answers pooled)"),
    (ECE_KEY, "expected calibration error"),
    ("auto_fraction_at_threshold", "answers posted without review"),
    ("agreement_at_threshold", "agreement of the answers posted"),
)


def metric_text(version: ModelVersion, key: str) -> str:
    value = version.metrics.get(key) if isinstance(version.metrics, dict) else None
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


def _number(metrics: dict[str, object], key: str) -> float | None:
    value = metrics.get(key)
    return float(value) if isinstance(value, (int, float)) and value == value else None


@dataclass(frozen=True)
class MetricRow:
    label: str
    value: str
    interval: str  # "0.61 – 0.79" (95%, cross-validated) or ""


def metric_rows(version: ModelVersion) -> list[MetricRow]:
    """The version's metrics as table rows, each with its 95% cross-validated interval where the
    training measured one (``<key>_ci_low`` / ``<key>_ci_high``)."""
    metrics = version.metrics if isinstance(version.metrics, dict) else {}
    rows = []
    for key, label in METRIC_LABELS:
        value = _number(metrics, key)
        if value is None:
            continue
        low, high = _number(metrics, f"{key}_ci_low"), _number(metrics, f"{key}_ci_high")
        interval = f"{low:.3f} – {high:.3f}" if low is not None and high is not None else ""
        rows.append(MetricRow(label, f"{value:.3f}", interval))
    return rows + criterion_metric_rows(metrics)


CRITERION_METRICS = (("qwk", "QWK"), ("accuracy", "exact agreement"), ("macro_f1", "macro F1"))


def criterion_metric_rows(metrics: dict[str, object]) -> list[MetricRow]:
    """An analytic item's version: the share of answers right on every criterion (exact match)
    and each criterion's QWK, exact agreement and macro F1 (``<metric>/<criterion>`` keys of the
    training's report, in rubric order). [] for a holistic version."""
    rows = []
    exact = _number(metrics, "exact_match")
    if exact is not None:
        rows.append(MetricRow("exact match (every criterion right)", f"{exact:.3f}", ""))
    names = dict.fromkeys(k.split("/", 1)[1] for k in metrics if k.startswith("qwk/"))
    for name in names:
        for key, label in CRITERION_METRICS:
            value = _number(metrics, f"{key}/{name}")
            if value is not None:
                rows.append(MetricRow(f"{label}: criterion {name}", f"{value:.3f}", ""))
    return rows


def metrics_source(version: ModelVersion) -> str:
    """Where the figures come from, in words."""
    metrics = version.metrics if isinstance(version.metrics, dict) else {}
    folds = _number(metrics, "inner_folds")
    if folds:
        answers = _number(metrics, "n_train") or 0
        return f"cross-validated: {int(folds)} folds over {int(answers)} training answers"
    tested = _number(metrics, "n_test")
    if tested:
        return f"{int(tested)} held-out test answers"
    return "not measured"


def qwk_summary(version: ModelVersion) -> str:
    """ "QWK 0.712 (95% CI 0.650 – 0.774)", or "QWK 0.712", or "not measured"."""
    rows = {row.label: row for row in metric_rows(version)}
    qwk = rows.get("QWK")
    if qwk is None:
        return "not measured"
    return f"QWK {qwk.value}" + (f" (95% CI {qwk.interval})" if qwk.interval else "")


def progress_bar(version: ModelVersion) -> str:
    """Training progress as a bar with its percent and epoch (HTML)."""
    progress = version.progress if isinstance(version.progress, dict) else {}
    percent = progress.get("percent", 0.0)
    percent = max(0.0, min(100.0, float(percent))) if isinstance(percent, (int, float)) else 0.0
    if version.status not in (ModelVersion.Status.PENDING, ModelVersion.Status.TRAINING):
        percent = 100.0 if version.status == ModelVersion.Status.READY else percent
    epoch, epochs = progress.get("epoch"), progress.get("epochs")
    detail = f", epoch {epoch} of {epochs}" if epoch is not None and epochs else ""
    return format_html(
        '<progress class="sb-progress-bar" max="100" value="{}" aria-label="training progress of '
        '{}"></progress> <span class="sb-progress-label">{}%{} ({})</span>',
        f"{percent:.0f}",
        version.label,
        f"{percent:.0f}",
        detail,
        version.get_status_display(),
    )


def waiting_for_review(item: Item) -> int:
    """How many of the item's answers wait for a person: below the review threshold or flagged,
    the student asked for a review, or no model scores the item yet; not reviewed yet."""
    answers = Submission.objects.filter(item=item)
    below = review.ReviewFilter(needs_review=True, unreviewed=True).apply(answers)
    asked = answers.filter(review_requested=True, reviewed_score__isnull=True)
    return len(set(below.values_list("pk", flat=True)) | set(asked.values_list("pk", flat=True)))


def item_glance(item: Item) -> dict[str, object]:
    """The top of an item's page: how good its active model is, how many answers wait."""
    version = item.active_version
    return {
        "version": version,
        "qwk": qwk_summary(version) if version else "",
        "source": metrics_source(version) if version else "",
        "rows": metric_rows(version) if version else [],
        "waiting": waiting_for_review(item),
        "answers": Submission.objects.filter(item=item).count(),
    }


def confidence_report(version: ModelVersion) -> dict[str, object]:
    """The version's agreement-versus-automation curve, ECE and review threshold; what is
    missing says "not available"."""
    metrics = version.metrics if isinstance(version.metrics, dict) else {}
    curve = metrics.get(CURVE_KEY)
    curve = [p for p in curve if isinstance(p, dict)] if isinstance(curve, list) else []
    stored = version.review_threshold
    threshold = stored if stored is not None else float(settings.SCOREBRIDGE_REVIEW_THRESHOLD)
    ece = metrics.get(ECE_KEY)
    return {
        "automation_svg": charts.automation_svg(
            curve, chosen=threshold, title=f"{version.label}: answers posted vs agreement"
        )
        if curve
        else "",
        "automation_source": str(metrics.get(CURVE_SOURCE_KEY) or "held-out answers"),
        "ece": f"{ece:.3f}" if isinstance(ece, (int, float)) else "not available",
        "review_threshold": f"{threshold:.2f}",
        "threshold_source": "chosen for the target agreement"
        if stored is not None
        else "SCOREBRIDGE_REVIEW_THRESHOLD (this kind stores none)",
        "item_threshold": version.item.review_threshold,
    }


def version_report(version: ModelVersion) -> dict[str, object]:
    """What the item page shows for one version: metrics, confusion matrix, training curve,
    the curve of answers posted automatically against their agreement."""
    matrix, matrix_source = review.version_confusion(version)
    history = review.training_history(version)
    series = {
        name: [float(h[name]) for h in history if isinstance(h.get(name), (int, float))]
        for name in ("train_loss", "val_loss")
    }
    series = {k: v for k, v in series.items() if v}
    return {
        "version": version,
        "qwk": metric_text(version, "qwk"),
        "accuracy": metric_text(version, "accuracy"),
        "macro_f1": metric_text(version, "macro_f1"),
        "micro_f1": metric_text(version, "micro_f1"),
        "n_test": version.metrics.get("n_test", "-") if isinstance(version.metrics, dict) else "-",
        "metric_rows": metric_rows(version),
        "metrics_source": metrics_source(version),
        "progress_bar": progress_bar(version),
        "confusion_svg": charts.confusion_svg(matrix, title=f"{version.label} confusion matrix")
        if matrix
        else "",
        "confusion_source": matrix_source,
        "curve_svg": charts.line_svg(series, title=f"{version.label} training curve")
        if series
        else "",
        "in_progress": version.status
        in (ModelVersion.Status.PENDING, ModelVersion.Status.TRAINING),
        "confidence": confidence_report(version),
    }


def merge_report(version: ModelVersion) -> dict[str, object] | None:
    """What a merged version's page shows: its group, plan, before/after metrics, storage."""
    metrics = version.metrics if isinstance(version.metrics, dict) else {}
    merge = metrics.get("merge")
    if version.kind != ModelVersion.Kind.MERGED or not isinstance(merge, dict):
        return None
    before = metrics.get("before") if isinstance(metrics.get("before"), dict) else {}
    summary = merge.get("job_summary") if isinstance(merge.get("job_summary"), dict) else {}
    job_before, job_after = summary.get("before") or {}, summary.get("after") or {}

    def fmt(value: object) -> str:
        return f"{value:.3f}" if isinstance(value, (int, float)) else "-"

    rows = [
        {"metric": label, "before": fmt(before.get(key)), "after": fmt(metrics.get(key))}  # type: ignore[union-attr]
        for key, label in (
            ("micro_f1", "micro F1"),
            ("macro_f1", "macro F1"),
            ("qwk", "QWK"),
            ("accuracy", "accuracy"),
        )
    ]
    job_rows = [
        {"metric": label, "before": fmt(job_before.get(key)), "after": fmt(job_after.get(key))}
        for key, label in (
            ("micro_f1_pooled", "micro F1 (all answers)"),
            ("macro_f1_item_mean", "macro F1 (item mean)"),
            ("qwk_item_mean", "QWK (item mean)"),
            ("accuracy_item_mean", "accuracy (item mean)"),
        )
    ]
    storage_before = merge.get("storage_before_bytes") or 0
    storage_after = merge.get("storage_after_bytes") or 0
    siblings = ModelVersion.objects.filter(
        kind=ModelVersion.Kind.MERGED, metrics__merge__job=merge.get("job")
    ).select_related("item")
    return {
        "info": merge,
        "rows": rows,
        "job_rows": job_rows,
        "storage_before_mb": f"{storage_before / 1e6:.1f}",
        "storage_after_mb": f"{storage_after / 1e6:.1f}",
        "storage_ratio": f"{storage_before / storage_after:.2f}x" if storage_after else "-",
        "group_versions": [v for v in siblings if v.item.key in merge.get("group_items", [])],
        "job_versions": list(siblings),
    }


def progress_payload(version: ModelVersion) -> dict[str, object]:
    """The JSON the progress poller reads."""
    progress = version.progress if isinstance(version.progress, dict) else {}
    metric = {
        k: v
        for k, v in progress.items()
        if k not in ("percent", "epoch", "epochs") and isinstance(v, (int, float))
    }
    return {
        "id": version.pk,
        "label": version.label,
        "status": version.status,
        "done": version.status not in (ModelVersion.Status.PENDING, ModelVersion.Status.TRAINING),
        "percent": progress.get("percent", 0.0),
        "epoch": progress.get("epoch"),
        "epochs": progress.get("epochs"),
        "metric": metric,
        "error": version.error[:500],
    }
