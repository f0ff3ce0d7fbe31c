"""How often the run-time gaming flags fire on real answers (false alarms) and on generated
gaming answers (catches), per flag and language, on an item bank in the SAF layout.

    .venv/bin/python benchmarks/gaming_flags.py /work/shared/datasets/saf
    .venv/bin/python benchmarks/gaming_flags.py /work/shared/datasets/saf --cards docs/model-cards

No model is needed: the flags are rules on the text, the item's prompt and its key terms.
``--cards`` adds, per language and attack, what earned credit with the models whose card JSON
files are in that folder (their gaming check: ``manage.py model_cards --out <folder>``).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

from ml_core.data import read_items_csv, read_responses_csv
from ml_core.gaming import ATTACKS, GamingItem, adversarial_answers, flag_answer, key_terms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path, help="folder with items.csv and responses.csv")
    parser.add_argument("--cards", type=Path, help="folder of model card JSON files")
    args = parser.parse_args()
    if args.cards is not None:
        print_card_credit(args.cards)
    items = {i.item_id: i for i in read_items_csv(args.folder / "items.csv")}
    responses = read_responses_csv(args.folder / "responses.csv", items)
    by_item = defaultdict(list)
    for r in responses:
        by_item[r.item_id].append(r)
    real: dict[str, Counter[str]] = defaultdict(Counter)
    generated: dict[str, Counter[str]] = defaultdict(Counter)
    for item_id, rows in sorted(by_item.items()):
        record = items[item_id]
        gaming = GamingItem(
            record.prompt,
            record.reference_answer,
            [r.text for r in rows if r.score == record.max_score],
            record.max_score,
            record.language,
        )
        terms = key_terms(gaming)
        for r in rows:
            flags = flag_answer(r.text, record.prompt, terms, record.language)
            real[record.language]["answers"] += 1
            real[record.language]["any"] += bool(flags)
            real[record.language].update(flags)
            if flags and r.score == record.max_score:
                real[record.language]["flagged_full_score"] += 1
        for attack, texts in adversarial_answers(gaming, n=20).items():
            for text in texts:
                generated[attack]["answers"] += 1
                generated[attack]["any"] += bool(
                    flag_answer(text, record.prompt, terms, record.language)
                )
    print("Real answers flagged (false alarms, sent to review):\n")
    print(
        "| language | answers | any flag | copies_prompt | key_term_list | invisible | full-score answers flagged |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for lang, c in sorted(real.items()):
        n = c["answers"]
        print(
            f"| {lang} | {n} | {c['any']} ({c['any'] / n:.1%}) | {c['copies_prompt']} "
            f"| {c['key_term_list']} | {c['invisible_characters']} | {c['flagged_full_score']} |"
        )
    print("\nGenerated gaming answers flagged (caught):\n")
    print("| attack | answers | flagged |")
    print("|---|---:|---:|")
    for attack in ATTACKS:
        c = generated[attack]
        print(f"| {attack} | {c['answers']} | {c['any'] / c['answers']:.0%} |")


def print_card_credit(folder: Path) -> None:
    """Per language and attack, over the cards' versions: generated answers earning any credit,
    full credit, and flagged by the run-time check (pooled over items)."""
    pooled: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    versions: Counter[str] = Counter()
    for path in sorted(folder.glob("*.json")):
        card = json.loads(path.read_text())
        gaming, language = card.get("gaming_check"), card["data"]["language"]
        if not isinstance(gaming, dict):
            continue
        versions[f"{language} ({card['kind']})"] += 1
        for a in gaming["attacks"]:
            scored = a["answers"] - a.get("errors", 0)
            c = pooled[(language, a["attack"])]
            c["answers"] += a["answers"]
            c["scored"] += scored
            c["credit"] += round((a["credit_rate"] or 0) * scored)
            c["full"] += round((a["full_credit_rate"] or 0) * scored)
            c["flagged"] += round((a["flagged_rate"] or 0) * a["answers"])
    print(f"Generated gaming answers scored by the models of {folder}: {dict(versions)}\n")
    print("| language | attack | answers | earn credit | full credit | flagged |")
    print("|---|---|---:|---:|---:|---:|")
    for (language, attack), c in sorted(
        pooled.items(), key=lambda kv: (kv[0][0], ATTACKS.index(kv[0][1]))
    ):
        n = c["scored"] or 1
        print(
            f"| {language} | {attack} | {c['answers']} | {c['credit'] / n:.0%} "
            f"| {c['full'] / n:.0%} | {c['flagged'] / c['answers']:.0%} |"
        )
    print()


if __name__ == "__main__":
    main()
