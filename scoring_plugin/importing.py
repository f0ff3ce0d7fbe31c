"""The admin's two-step CSV import: check and preview the files, then import what was shown.

Uploaded files wait in ``VAR_DIR/import-staging`` under a random token between the steps, so
the import reads exactly the bytes the preview showed.
"""

from __future__ import annotations

import csv
import io
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from ml_core.data import DataFormatError, ItemRecord, ResponseRecord, UnscoredRecord
from scoring_plugin.services import ImportError_, parse_item_bank

MAX_ROW_ERRORS = 50
STAGING_MAX_AGE_SECONDS = 24 * 3600
_FILES = ("items", "responses")


@dataclass
class RowError:
    file: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = [f"row {self.row}"] if self.row is not None else []
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return f"{self.file}: {', '.join(where)}: {self.message}" if where else self.message


@dataclass
class Preview:
    """What an import would do, shown before anything is stored."""

    items: list[ItemRecord] = field(default_factory=list)
    responses: list[ResponseRecord] = field(default_factory=list)
    answers_per_item: Counter[str] = field(default_factory=Counter)
    scores_per_item: dict[str, Counter[int]] = field(default_factory=dict)
    score_distribution: Counter[int] = field(default_factory=Counter)
    unscored: list[UnscoredRecord] = field(default_factory=list)
    """Answers with an empty score: imported as "needs a human score"."""
    unscored_per_item: Counter[str] = field(default_factory=Counter)
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def first_responses(self, count: int = 10) -> list[ResponseRecord]:
        return self.responses[:count]


def _staging_dir() -> Path:
    folder = Path(settings.VAR_DIR) / "import-staging"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def stage(files: dict[str, bytes | None]) -> str:
    """Keep the uploaded bytes for the confirm step; return the token naming them."""
    folder = _staging_dir()
    cutoff = time.time() - STAGING_MAX_AGE_SECONDS
    for old in folder.glob("*.csv"):
        if old.stat().st_mtime < cutoff:
            old.unlink(missing_ok=True)
    token = secrets.token_hex(16)
    for name in _FILES:
        data = files.get(name)
        if data is not None:
            (folder / f"{token}.{name}.csv").write_bytes(data)
    return token


def load_staged(token: str) -> dict[str, bytes | None] | None:
    """The staged files for ``token``, or None when the token is unknown or malformed."""
    if len(token) != 32 or not all(c in "0123456789abcdef" for c in token):
        return None
    folder = _staging_dir()
    found: dict[str, bytes | None] = {}
    for name in _FILES:
        path = folder / f"{token}.{name}.csv"
        found[name] = path.read_bytes() if path.is_file() else None
    if not any(found.values()):
        return None
    return found


def discard(token: str) -> None:
    for name in _FILES:
        (_staging_dir() / f"{token}.{name}.csv").unlink(missing_ok=True)


def _row_errors(file: str, data: bytes, check: object) -> list[RowError]:
    """Check each data row on its own, so every bad row is named, not only the first."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [RowError(file, None, None, f"not UTF-8 ({exc.reason} at byte {exc.start})")]
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return [RowError(file, None, None, "the file is empty")]
    header, errors = rows[0], []
    for index, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        writer.writerow(row)
        try:
            check(buffer.getvalue().encode())  # type: ignore[operator]
        except ImportError_ as exc:
            error = exc.error
            if error.row in (None, 1):  # a header problem: one message for the file
                return [RowError(file, error.row, error.column, error.reason)]
            errors.append(RowError(file, index, error.column, error.reason))
            if len(errors) >= MAX_ROW_ERRORS:
                break
    return errors


def preview(items_data: bytes | None, responses_data: bytes | None) -> Preview:
    """Validate both files completely and summarise them; nothing is written to the database."""
    result = Preview()
    try:
        items, responses = parse_item_bank(items_data, responses_data, unscored=result.unscored)
    except ImportError_ as exc:
        file = "items" if exc.file == "items.csv" else "responses"
        data = items_data if file == "items" else responses_data
        if file == "items":
            errors = _row_errors(exc.file, data or b"", lambda d: parse_item_bank(d, None))
        else:
            errors = _row_errors(
                exc.file, data or b"", lambda d: parse_item_bank(items_data, d, unscored=[])
            )
        # Some errors only show across rows (a repeated id): keep the first error then.
        error: DataFormatError = exc.error
        first = RowError(exc.file, error.row, error.column, error.reason)
        if not any(e.row == first.row and e.message == first.message for e in errors):
            errors.insert(0, first)
        result.errors = errors
        return result
    result.items, result.responses = items, responses
    for r in responses:
        result.answers_per_item[r.item_id] += 1
        result.scores_per_item.setdefault(r.item_id, Counter())[r.score] += 1
        result.score_distribution[r.score] += 1
    for u in result.unscored:
        result.unscored_per_item[u.item_id] += 1
    return result
