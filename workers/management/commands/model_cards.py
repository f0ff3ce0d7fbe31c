"""Write model cards (Markdown and JSON) of model versions into a folder, with a summary of
their gaming checks; optionally run the gaming check for versions trained without one."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from django.core.management.base import BaseCommand, CommandParser

from ml_core.gaming import ATTACKS
from scoring_plugin.model_cards import build_card, card_markdown
from scoring_plugin.models import ModelVersion


class Command(BaseCommand):
    help = (
        "Write <item>-v<n>.md/.json model cards of the active versions (or --all ready ones) "
        "into --out, and a README.md there with the gaming check over all of them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("keys", nargs="*", help="item keys (default: every item)")
        parser.add_argument("--out", required=True, type=Path)
        parser.add_argument("--all", action="store_true", help="every ready version")
        parser.add_argument(
            "--check",
            action="store_true",
            help="run the gaming check first for versions that have none (loads the models)",
        )

    def handle(self, *args: object, **options: object) -> None:
        import json

        versions = ModelVersion.objects.select_related("item").filter(
            status=ModelVersion.Status.READY
        )
        if not options["all"]:
            versions = versions.filter(is_active=True)
        keys = list(options["keys"])  # type: ignore[call-overload]
        if keys:
            versions = versions.filter(item__key__in=keys)
        out = Path(str(options["out"]))
        out.mkdir(parents=True, exist_ok=True)
        summary: dict[str, list[dict[str, object]]] = defaultdict(list)
        per_version: list[tuple[str, dict[str, object]]] = []
        count = 0
        for version in versions.order_by("item__key", "number"):
            if options["check"] and "gaming" not in (version.metrics or {}):
                from workers.trust_hooks import run_gaming_check

                report = run_gaming_check(version)
                ModelVersion.objects.filter(pk=version.pk).update(
                    metrics={**version.metrics, "gaming": report.to_json()}
                )
                version.refresh_from_db()
            card = build_card(version)
            stem = f"{version.item.key}-v{version.number}"
            (out / f"{stem}.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
            (out / f"{stem}.md").write_text(card_markdown(card))
            gaming = card.get("gaming_check")
            if isinstance(gaming, dict):
                for attack in gaming.get("attacks", []):
                    summary[str(attack["attack"])].append(attack)
                per_version.append((version.label, gaming))
            count += 1
        (out / "README.md").write_text(
            gaming_summary(summary, count) + per_version_table(per_version)
        )
        self.stdout.write(f"Wrote {count} model card(s) to {out}.\n")


def gaming_summary(summary: dict[str, list[dict[str, object]]], versions: int) -> str:
    """Per attack, over the versions: mean credit rates, items where it earned any credit, and
    the share of generated answers the run-time check flags."""

    def mean(rows: list[dict[str, object]], key: str) -> str:
        values = [float(r[key]) for r in rows if isinstance(r.get(key), (int, float))]  # type: ignore[arg-type]
        return f"{sum(values) / len(values):.0%}" if values else "-"

    lines = [
        "# Model cards",
        "",
        f"Cards of {versions} model version(s), written by `manage.py model_cards`.",
        "",
        "## Gaming check over these versions",
        "",
        "Mean over versions of the share of generated answers that earn any credit / full "
        "credit; items where the attack earned credit at least once; share the run-time "
        "check flags for review.",
        "",
        "| attack | earn credit | full credit | items with any credit | flagged |",
        "|---|---:|---:|---:|---:|",
    ]
    for attack in ATTACKS:
        rows = summary.get(attack, [])
        if not rows:
            continue
        credited = sum(1 for r in rows if _positive(r.get("credit_rate")))
        lines.append(
            f"| {attack} | {mean(rows, 'credit_rate')} | {mean(rows, 'full_credit_rate')} "
            f"| {credited} of {len(rows)} | {mean(rows, 'flagged_rate')} |"
        )
    return "\n".join(lines) + "\n"


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and value > 0


def per_version_table(rows: list[tuple[str, dict[str, object]]]) -> str:
    """Share of each attack's generated answers earning any credit, per version."""
    if not rows:
        return ""
    lines = [
        "",
        "## Per version: share of generated answers earning any credit",
        "",
        "| version | " + " | ".join(ATTACKS) + " |",
        "|---|" + "---:|" * len(ATTACKS),
    ]
    for label, gaming in rows:
        attacks = gaming.get("attacks")
        rates = {
            str(a["attack"]): a.get("credit_rate")
            for a in (attacks if isinstance(attacks, list) else [])
        }
        cells = [
            f"{rates[a]:.0%}" if isinstance(rates.get(a), (int, float)) else "-" for a in ATTACKS
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
