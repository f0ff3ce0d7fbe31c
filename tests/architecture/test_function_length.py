"""No long functions: at most 100 lines outside the tests, at most 60 in ``workers/`` (a task
claims its rows, calls ``ml_core`` and writes the outcome; the work itself lives elsewhere).

A function's length is its lines from ``def`` (decorators excluded) to its last line, nested
functions included; read from the source with ``ast``, so the check runs without imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ("scorebridge", "queueing", "ml_core", "scoring_plugin", "lti", "workers", "benchmarks")
SOURCE_FILES = ("manage.py", "gunicorn.conf.py", "scripts")
LIMIT = 100
LIMITS = {"workers": 60}


def function_lengths(source: str) -> list[tuple[str, int, int]]:
    """(name, first line, length in lines) of every function and method in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            end = node.end_lineno or node.lineno
            found.append((node.name, node.lineno, end - node.lineno + 1))
    return found


def _files() -> list[Path]:
    paths = [p for name in SOURCE for p in (ROOT / name).rglob("*.py")]
    for name in SOURCE_FILES:
        path = ROOT / name
        paths.extend(path.rglob("*.py") if path.is_dir() else [path])
    return sorted(p for p in paths if p.is_file() and "migrations" not in p.parts)


def _too_long() -> dict[tuple[str, str], str]:
    found = {}
    for path in _files():
        relative = path.relative_to(ROOT)
        limit = LIMITS.get(relative.parts[0], LIMIT)
        for name, line, length in function_lengths(path.read_text()):
            if length > limit:
                found[(str(relative), name)] = (
                    f"{relative}:{line} {name} {length} lines (limit {limit})"
                )
    return found


def test_no_function_is_longer_than_its_limit() -> None:
    assert sorted(_too_long().values()) == []


def test_a_function_is_measured_from_def_to_its_last_line() -> None:
    source = "@decorator\ndef outer(a):\n    def inner():\n        return 1\n\n    return a\n"
    assert sorted(function_lengths(source)) == [("inner", 3, 2), ("outer", 2, 5)]
