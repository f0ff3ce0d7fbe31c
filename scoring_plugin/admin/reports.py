"""What the item and version pages render for people: metrics, confusion matrix, training
curve, agreement-versus-automation curve, merge results, and the progress poller's JSON."""

from __future__ import annotations

from django.conf import settings

from ml_core.confidence import CURVE_KEY, CURVE_SOURCE_KEY, ECE_KEY
from scoring_plugin import charts, review
from scoring_plugin.models import ModelVersion


def metric_text(version: ModelVersion, key: str) -> str:
    value = version.metrics.get(key) if isinstance(version.metrics, dict) else None
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


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
