"""Request body parsing that turns hostile JSON into a 400, never a 500."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# Deeper than any answer or batch needs; far below where Python's parser recurses too deep.
MAX_JSON_DEPTH = 32


def too_deep(value: object, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when lists and objects nest more than ``limit`` levels (no recursion)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class SafeJSONParser(JSONParser):
    """DRF's JSON parser; JSON nested too deeply for the parser (``RecursionError``) or deeper
    than ``MAX_JSON_DEPTH`` is refused with 400 Bad Request."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - nested too deeply.") from exc
        if too_deep(data):
            raise ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.")
        return data
