"""Checking a student's answer before it is tokenized: shared by every scorer.

Imports neither torch nor transformers, so the distilled student (which runs on any laptop with
ONNX Runtime alone) uses the same rules as the engine and the merged-group scorer.
"""

from __future__ import annotations

MAX_CHARS_PER_TOKEN = 32
"""Characters kept per token of the model's window before tokenizing: bounds the cost of
absurdly long input; anything cut is reported as truncated."""


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
    if not text.strip():
        return "", "empty answer"
    return text, None
