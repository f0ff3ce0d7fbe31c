"""How often the run-time gaming flags fire on real answers (false alarms) and on generated
gaming answers (catches), per flag and language, on an item bank in the SAF layout.

    .venv/bin/python benchmarks/gaming_flags.py /work/shared/datasets/saf

No model is needed: the flags are rules on the text, the item's prompt and its key terms.
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from pathlib import Path

from ml_core.data import read_items_csv, read_responses_csv
from ml_core.gaming import ATTACKS, GamingItem, adversarial_answers, flag_answer, key_terms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path, help="folder with items.csv and responses.csv")
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
