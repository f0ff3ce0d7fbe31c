"""Checking a student's answer before it is tokenized: shared by every scorer.

Imports neither torch nor transformers, so the distilled student (which runs on any laptop with
ONNX Runtime alone) uses the same rules as the engine and the merged-group scorer.
"""

from __future__ import annotations

import unicodedata

MAX_CHARS_PER_TOKEN = 32
"""Characters kept per token of the model's window before tokenizing: bounds the cost of
absurdly long input; anything cut is reported as truncated."""


# Characters that draw nothing although Unicode does not call them spaces or format characters.
_BLANK_LOOKING = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e")
# Control, format (zero-width space, joiners, BOM, direction marks), separators, unassigned and
# private-use code points; combining marks draw nothing without a visible base character.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp", "Mn", "Me"})


def has_visible_text(text: str) -> bool:
    """Whether ``text`` shows anything: an answer of only spaces, zero-width or other invisible
    characters is empty, however long it is."""
    return any(
        ch not in _BLANK_LOOKING and unicodedata.category(ch) not in _INVISIBLE_CATEGORIES
        for ch in text
    )


def clean_answer_text(text: object) -> tuple[str, str | None]:
    """(text, problem): decode bytes, reject non-text, undecodable and empty answers."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            return "", f"answer is not valid UTF-8 (byte {exc.start})"
    if not isinstance(text, str):
        return "", f"answer must be text, got {type(text).__name__}"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from a lossy decode upstream
        return "", "answer contains undecodable characters"
    text = text.replace("\x00", "")
    if not has_visible_text(text):
        return "", EMPTY_ANSWER
    return text, None


EMPTY_ANSWER = "empty answer"
"""The problem reported for an answer with no visible character (spaces, zero-width only)."""
