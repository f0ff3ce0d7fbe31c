"""Run-time gaming flags (issue 18): an answer that copies the prompt, lists the item's key terms
without a sentence, or holds invisible characters is flagged when it is submitted; a flagged
answer needs review whatever its confidence (``Submission.needs_review``)."""

from __future__ import annotations

from django.core.cache import cache

from ml_core.gaming import GamingItem, flag_answer, key_terms
from scoring_plugin.models import Item

# High-scoring answers read per item to find its key terms.
KEY_TERM_SOURCES = 200


def item_key_terms(item: Item) -> list[str]:
    """Key terms of the reference answer and the full-score answers, cached for five minutes
    (and until the item changes)."""
    stamp = item.updated_at.timestamp() if item.updated_at else 0
    cache_key = f"scorebridge-key-terms:{item.pk}:{stamp}"
    terms = cache.get(cache_key)
    if terms is None:
        high = list(
            item.scored_answers.filter(score=item.max_score).values_list("text", flat=True)[
                :KEY_TERM_SOURCES
            ]
        )
        terms = key_terms(
            GamingItem(item.prompt, item.reference_answer, high, item.max_score, item.language)
        )
        cache.set(cache_key, terms, 300)
    return list(terms)


def answer_flags(item: Item, text: str) -> list[str]:
    return flag_answer(text, item.prompt, item_key_terms(item), item.language)
