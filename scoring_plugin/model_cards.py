"""A model card per model version (issue 18), as JSON and Markdown.

Built from what is stored: the version's metrics (the cross-validated evaluation of ``auto``
versions, a held-out test split otherwise), its artifact manifest (training configuration, backbone fingerprint),
the item's training data counts (per score, per who scored them), the gaming check stored by the
training hook, results per answer-length band and per imported group column (measured at
training on answers the model was not trained on), and the instructors' reviews of answers this version scored (agreement, the
agreement-versus-automation curve, calibration, results per answer-length band). Counts and
rates only: a card never holds an answer's text, so it survives erasure and retention purges.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from ml_core.confidence import CURVE_KEY, CURVE_SOURCE_KEY, ECE_KEY, REVIEW_THRESHOLD_KEY
from ml_core.gaming import attack_row
from ml_core.metrics import accuracy, quadratic_weighted_kappa
from ml_core.subgroups import (
    GROUPS_KEY,
    LENGTH_BANDS_KEY,
    MIN_GROUP_ANSWERS,
    OUT_OF_FOLD_KEY,
    SUBGROUP_SOURCE_KEY,
    results_by_length_band,
    wilson_interval,
)
from scoring_plugin.artifact_store import publish_documents, version_folder_or_none
from scoring_plugin.models import ModelVersion

INTENDED_USE = (
    "Suggests a score for students' short answers to this one item, in the item's language, "
    "as a first reading for an instructor. Scores under the review threshold, and answers "
    "flagged as possible gaming, go to an instructor before they count; instructors can "
    "override any score, and every override is logged."
)
LIMITS = [
    "Trained for one item: it does not score other questions, even similar ones.",
    "Learned from the scored answers counted below: answers unlike them (another language, "
    "unusual length or style, new correct ideas) are scored less reliably.",
    "Accuracy figures come from that data (cross-validated, or a held-out split); on a small "
    "item they carry wide intervals (shown), and they say nothing about answers unlike it.",
    f"Results per group or length band are not shown for fewer than {MIN_GROUP_ANSWERS} "
    "answers; a group's figures describe the answers imported for it, not every student in it.",
    "It reads only the beginning of a long answer (the backbone's window).",
    "It must not be the only basis of a high-stakes decision about a student.",
]
LENGTH_BANDS = [(0, 10, "1-10 words"), (10, 30, "11-30 words"), (30, 10**9, "over 30 words")]
AUTOMATION_THRESHOLDS = [0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]


def _manifest(version: ModelVersion) -> dict[str, object]:
    path = (version_folder_or_none(version) or Path("-")) / "manifest.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _num(metrics: dict[str, object], key: str) -> float | None:
    value = metrics.get(key)
    return float(value) if isinstance(value, (int, float)) else None


def _evaluation(version: ModelVersion, metrics: dict[str, object]) -> dict[str, object]:
    """Accuracy as training measured it: the cross-validated out-of-fold figures of an ``auto``
    version (QWK interval over the inner folds), else the held-out test split's."""
    per_score: dict[str, float | None] = {}
    confusion = metrics.get("confusion")
    if isinstance(confusion, list):
        for score, row in enumerate(confusion):
            if isinstance(row, list) and row:
                total = sum(row)
                per_score[str(score)] = round(row[score] / total, 4) if total else None
    acc = _num(metrics, "accuracy")
    low, high = _num(metrics, "qwk_ci_low"), _num(metrics, "qwk_ci_high")
    cross_validated = version.kind == ModelVersion.Kind.AUTO and _num(metrics, "n_train")
    if cross_validated:
        n = _num(metrics, "n_train")
        folds = _num(metrics, "inner_folds")
        source = f"cross-validation ({int(folds or 0)} folds, out-of-fold predictions)"
    else:
        n = _num(metrics, "n_test")
        source = (
            "cross-validation"
            if any(k.startswith("cv_") for k in metrics)
            else ("held-out test split")
        )
    cv = {k: v for k, v in metrics.items() if k.startswith("cv_") or k.endswith("_ci95")}
    return {
        "source": source,
        "n_test": int(n) if n is not None else None,
        "qwk": _num(metrics, "qwk"),
        "qwk_ci95": [round(low, 4), round(high, 4)]
        if low is not None and high is not None
        else None,
        "accuracy": acc,
        "accuracy_ci95": cv.get("accuracy_ci95")
        or (wilson_interval(acc * n, n) if acc is not None and n else None),
        "macro_f1": _num(metrics, "macro_f1"),
        "micro_f1": _num(metrics, "micro_f1"),
        "recall_per_score": per_score,
        "cross_validation": cv or None,
    }


def _calibration(metrics: dict[str, object]) -> dict[str, object] | None:
    """ECE and the agreement-versus-automation curve measured at training, when stored."""
    curve = metrics.get(CURVE_KEY)
    if not isinstance(curve, list) or not curve:
        return None
    return {
        "source": metrics.get(CURVE_SOURCE_KEY),
        "ece": _num(metrics, ECE_KEY),
        "review_threshold": _num(metrics, REVIEW_THRESHOLD_KEY),
        "agreement_vs_automation": [
            {
                "threshold": p.get("threshold"),
                "automated_share": p.get("auto_fraction"),
                "agreement": p.get("agreement"),
            }
            for p in curve
            if isinstance(p, dict)
        ],
    }


def _subgroups(
    version: ModelVersion, metrics: dict[str, object], manifest: dict[str, object]
) -> dict[str, object]:
    """Results per answer-length band and per imported group column, measured at training;
    bands of an ``auto`` version trained before they were stored come from its manifest."""
    bands = metrics.get(LENGTH_BANDS_KEY)
    source = metrics.get(SUBGROUP_SOURCE_KEY)
    oof = manifest.get(OUT_OF_FOLD_KEY)
    if not isinstance(bands, list) and isinstance(oof, dict):
        try:
            bands = results_by_length_band(
                [int(w) for w in oof["words"]],
                [int(v) for v in oof["scores"]],
                [int(v) for v in oof["predicted"]],
                version.item.max_score + 1,
            )
            source = "out-of-fold answers of the cross-validation"
        except (KeyError, TypeError, ValueError):
            bands = None
    groups = metrics.get(GROUPS_KEY)
    return {
        "source": source,
        "by_length_band": bands if isinstance(bands, list) else None,
        "by_group": groups if isinstance(groups, dict) else None,
    }


def _reviews(version: ModelVersion) -> dict[str, object]:
    """What instructors' reviews of this version's scores say (none before anyone reviews)."""
    rows = list(
        version.submissions.filter(reviewed_score__isnull=False, score__isnull=False).values_list(
            "reviewed_score", "score", "confidence", "text"
        )
    )
    labels = version.item.max_score + 1
    out: dict[str, object] = {"reviewed_answers": len(rows)}
    if not rows:
        return out
    human = [r[0] for r in rows]
    auto = [r[1] for r in rows]
    out["accuracy"] = round(float(accuracy(human, auto)), 4)
    out["accuracy_ci95"] = wilson_interval(
        sum(h == a for h, a in zip(human, auto, strict=True)), len(rows)
    )
    out["qwk"] = (
        round(float(quadratic_weighted_kappa(human, auto, labels)), 4) if len(rows) > 1 else None
    )
    curve = []
    for t in AUTOMATION_THRESHOLDS:
        kept = [(h, a) for h, a, c, _ in rows if (c or 0.0) >= t]
        curve.append(
            {
                "threshold": t,
                "automated_share": round(len(kept) / len(rows), 4),
                "agreement": round(sum(h == a for h, a in kept) / len(kept), 4) if kept else None,
            }
        )
    out["agreement_vs_automation"] = curve
    bins: dict[int, list[tuple[float, bool]]] = {}
    for h, a, c, _ in rows:
        if c is not None:
            bins.setdefault(min(int(c * 5), 4), []).append((c, h == a))
    out["calibration"] = [
        {
            "confidence": f"{b / 5:.1f}-{(b + 1) / 5:.1f}",
            "answers": len(v),
            "mean_confidence": round(sum(c for c, _ in v) / len(v), 4),
            "agreement": round(sum(ok for _, ok in v) / len(v), 4),
        }
        for b, v in sorted(bins.items())
    ]
    bands = []
    for low, high, name in LENGTH_BANDS:
        band = [(h, a) for h, a, _, text in rows if low < len(text.split()) <= high]
        if band:
            bands.append(
                {
                    "band": name,
                    "answers": len(band),
                    "agreement": round(sum(h == a for h, a in band) / len(band), 4),
                }
            )
    out["by_length_band"] = bands
    return out


def build_card(version: ModelVersion) -> dict[str, object]:
    """The card's content as JSON-ready data."""
    item = version.item
    metrics = version.metrics if isinstance(version.metrics, dict) else {}
    manifest = _manifest(version)
    training = manifest.get("training") if isinstance(manifest.get("training"), dict) else {}
    config = {k: v for k, v in (training or {}).items() if k != "history"}  # type: ignore[union-attr]
    answers = item.scored_answers.values_list("score", "source")
    by_score = Counter(str(score) for score, _ in answers)
    by_source = Counter(source for _, source in answers)
    evaluation = _evaluation(version, metrics)
    return {
        "model_version": version.label,
        "item": item.key,
        "kind": version.kind,
        "status": version.status,
        "active": version.is_active,
        "trained_at": version.trained_at.isoformat() if version.trained_at else None,
        "intended_use": INTENDED_USE,
        "limits": LIMITS,
        "human_oversight": {
            "review_threshold": item.review_threshold,
            "flagged_answers_go_to_review": True,
        },
        "data": {
            "language": item.language,
            "max_score": item.max_score,
            "answers": sum(by_score.values()),
            "by_score": dict(sorted(by_score.items())),
            # "import": scores from the imported data set; "review": instructors' reviews
            "scored_by": dict(sorted(by_source.items())),
            "splits": manifest.get("split_sizes"),
        },
        "evaluation": evaluation,
        "calibration": _calibration(metrics),
        "by_language": {
            item.language: {
                "answers": evaluation["n_test"],
                "accuracy": evaluation["accuracy"],
                "qwk": evaluation["qwk"],
            }
        },
        "subgroups": _subgroups(version, metrics, manifest),
        "instructor_reviews": _reviews(version),
        "gaming_check": metrics.get("gaming"),
        "training_config": {
            "backbone": manifest.get("backbone") or version.backbone,
            "backbone_fingerprint": manifest.get("backbone_fingerprint"),
            "config": config,
        },
    }


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _subgroup_rows(rows: list[dict[str, object]]) -> list[str]:
    return [
        f"| {r['value']} | {r['answers']} | "
        + (
            f"{_fmt(r.get('accuracy'))} ({_fmt(r.get('accuracy_ci95'))}) | {_fmt(r.get('qwk'))} |"
            if "note" not in r
            else f"{r['note']} | |"
        )
        for r in rows
    ]


def _training_sections(card: dict[str, object]) -> list[str]:
    """Per language, calibration and the automation curve, per length band and per group, as
    measured at training (out-of-fold or held-out answers)."""
    lines = [
        "Per language: "
        + ", ".join(
            f"`{lang}` {v.get('answers') or '-'} answers, accuracy {_fmt(v.get('accuracy'))}, "
            f"QWK {_fmt(v.get('qwk'))}"
            for lang, v in card["by_language"].items()  # type: ignore[union-attr]
        ),
        "",
    ]
    calibration = card.get("calibration")
    if isinstance(calibration, dict):
        lines += [
            f"## Calibration and automation ({calibration['source'] or 'at training'})",
            "",
            f"Expected calibration error: {_fmt(calibration['ece'])}; review threshold: "
            f"{_fmt(calibration['review_threshold'])} (answers below it go to an instructor).",
            "",
            "| confidence threshold | automated | agreement |",
            "|---:|---:|---:|",
            *[
                f"| {_fmt(p['threshold'])} | {_fmt(p['automated_share'])} "
                f"| {_fmt(p['agreement'])} |"
                for p in calibration["agreement_vs_automation"]
            ],
            "",
        ]
    groups = card.get("subgroups")
    if not isinstance(groups, dict):
        return lines
    header = ["| {} | answers | accuracy (95% CI) | QWK |", "|---|---:|---:|---:|"]
    if isinstance(groups.get("by_length_band"), list):
        lines += [
            f"## Per answer length ({groups['source'] or 'at training'})",
            "",
            header[0].format("length"),
            header[1],
            *_subgroup_rows(groups["by_length_band"]),
            "",
        ]
    for column, rows in (groups.get("by_group") or {}).items():
        lines += [
            f"## Per group `{column}` ({groups['source'] or 'at training'})",
            "",
            header[0].format(column),
            header[1],
            *_subgroup_rows(rows),
            "",
        ]
    if not groups.get("by_group"):
        lines += [
            "Per group: no group columns were imported with this item's answers "
            "(`group:<name>` columns of responses.csv).",
            "",
        ]
    return lines


def _header_sections(card: dict[str, object]) -> list[str]:
    """Title, intended use and limits."""
    return [
        f"# Model card: {card['model_version']}",
        "",
        f"Kind: {card['kind']} · status: {card['status']} · active: {card['active']} · "
        f"trained: {card['trained_at'] or '-'}",
        "",
        "## Intended use",
        "",
        str(card["intended_use"]),
        "",
        "## Limits",
        "",
        *[f"- {limit}" for limit in card["limits"]],  # type: ignore[union-attr]
        "",
    ]


def _data_section(data: dict[str, Any]) -> list[str]:
    """The human-scored answers the version learnt from."""
    return [
        "## Data",
        "",
        f"{data['answers']} human-scored answers in `{data['language']}`, scores 0-"
        f"{data['max_score']}; scored by: "
        + ", ".join(f"{k} {v}" for k, v in data["scored_by"].items()),
        "",
        "| score | answers |",
        "|---:|---:|",
        *[f"| {k} | {v} |" for k, v in data["by_score"].items()],
        "",
        f"Splits: {data['splits'] or '-'}",
        "",
    ]


def _accuracy_section(evaluation: dict[str, Any]) -> list[str]:
    """Accuracy on the evaluated answers."""
    return [
        f"## Accuracy ({evaluation['source']})",
        "",
        "| metric | value |",
        "|---|---:|",
        f"| answers evaluated | {_fmt(evaluation['n_test'])} |",
        f"| accuracy | {_fmt(evaluation['accuracy'])} "
        f"(95% CI {_fmt(evaluation['accuracy_ci95'])}) |",
        f"| QWK | {_fmt(evaluation['qwk'])}"
        + (f" (95% CI {_fmt(evaluation['qwk_ci95'])}) |" if evaluation.get("qwk_ci95") else " |"),
        f"| macro F1 | {_fmt(evaluation['macro_f1'])} |",
        f"| micro F1 | {_fmt(evaluation['micro_f1'])} |",
        "",
        "Recall per score: "
        + (
            ", ".join(f"{k}: {_fmt(v)}" for k, v in evaluation["recall_per_score"].items())
            or "not stored for this version (no test confusion matrix)"
        ),
        "",
    ]


def _reviews_section(reviews: dict[str, Any]) -> list[str]:
    """How instructors' reviews agree with the version's scores."""
    lines = ["## Instructors' reviews of its scores", ""]
    if not reviews.get("reviewed_answers"):
        return lines + [
            "No reviews yet: calibration, the agreement-versus-automation curve and results "
            "per answer length appear once instructors review answers this version scored."
        ]
    return lines + [
        f"{reviews['reviewed_answers']} reviewed answers: agreement "
        f"{_fmt(reviews['accuracy'])} (95% CI {_fmt(reviews['accuracy_ci95'])}), "
        f"QWK {_fmt(reviews['qwk'])}.",
        "",
        "Agreement versus automation (answers at or above a confidence threshold):",
        "",
        "| threshold | automated | agreement |",
        "|---:|---:|---:|",
        *[
            f"| {p['threshold']} | {p['automated_share']:.0%} | {_fmt(p['agreement'])} |"
            for p in reviews["agreement_vs_automation"]
        ],
        "",
        "Calibration:",
        "",
        "| confidence | answers | mean confidence | agreement |",
        "|---|---:|---:|---:|",
        *[
            f"| {b['confidence']} | {b['answers']} | {_fmt(b['mean_confidence'])} "
            f"| {_fmt(b['agreement'])} |"
            for b in reviews["calibration"]
        ],
        "",
        "Per answer length: "
        + ", ".join(
            f"{b['band']}: {_fmt(b['agreement'])} ({b['answers']})"
            for b in reviews["by_length_band"]
        ),
    ]


def _gaming_section(gaming: object) -> list[str]:
    """The adversarial answers check, when it ran."""
    lines = ["", "## Gaming check", ""]
    if not (isinstance(gaming, dict) and isinstance(gaming.get("attacks"), list)):
        return lines + ["Not run for this version."]
    return lines + [
        "Generated adversarial answers scored by this version (how often they earn credit; "
        "'flagged' = the run-time check sends them to review):",
        "",
        "| attack | answers | earn credit | full credit | mean score/max | flagged |",
        "|---|---:|---:|---:|---:|---:|",
        *[attack_row(a) for a in gaming["attacks"]],
    ]


def _training_config_section(training: dict[str, Any]) -> list[str]:
    """The backbone and the training configuration."""
    return [
        "",
        "## Training",
        "",
        f"Backbone: `{training['backbone']}` (fingerprint `{training['backbone_fingerprint']}`)",
        "",
        "```json",
        json.dumps(training["config"], indent=1, sort_keys=True),
        "```",
        "",
    ]


def card_markdown(card: dict[str, object]) -> str:
    """The card as Markdown, for people: one helper per section, in the card's order."""
    data = card["data"]
    evaluation = card["evaluation"]
    reviews = card["instructor_reviews"]
    training = card["training_config"]
    assert isinstance(data, dict) and isinstance(evaluation, dict)
    assert isinstance(reviews, dict) and isinstance(training, dict)
    lines = [
        *_header_sections(card),
        *_data_section(data),
        *_accuracy_section(evaluation),
        *_training_sections(card),
        *_reviews_section(reviews),
        *_gaming_section(card["gaming_check"]),
        *_training_config_section(training),
    ]
    return "\n".join(lines)


def card_file_names(version: ModelVersion) -> tuple[str, str]:
    """``model_card.json``/``.md``; ``model_card.<item>.json``/``.md`` when several versions
    share the artifact (a merged group), so each keeps its own card beside it."""
    shared = (
        ModelVersion.objects.filter(artifact_key=version.artifact_key)
        .exclude(pk=version.pk)
        .exists()
    )
    stem = f"model_card.{version.item.key}" if shared else "model_card"
    return f"{stem}.json", f"{stem}.md"


def store_card_files(version: ModelVersion) -> list[str]:
    """Store the card as JSON and Markdown beside the version's artifact in the artifact store
    (a local folder or S3), where it travels with the model; returns the file names."""
    card = build_card(version)
    json_name, md_name = card_file_names(version)
    publish_documents(
        version,
        {
            json_name: (json.dumps(card, indent=2, sort_keys=True) + "\n").encode(),
            md_name: card_markdown(card).encode(),
        },
    )
    return [json_name, md_name]
