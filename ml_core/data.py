"""Reading item banks and human-scored answers in the SAF layout.

Two CSV files (see ``shared/datasets/README.md`` of the project's data folder):

* ``items.csv``: ``item_id, language, prompt, reference_answer, max_score``, and optionally
  ``title`` (what students see as the heading) and ``feedback_0``, ``feedback_1``, ... (the
  text a student reads with score 0, 1, ...; at most ``max_score``). An analytic item (a rubric
  of named criteria) fills ``criterion:<name>`` with that criterion's highest score (blank: the
  item has no such criterion; at least two criteria, whose highest scores add up to
  ``max_score``) and may add ``criterion:<name>:feedback_<score>`` (what a student reads with
  that criterion score).
* ``responses.csv``: ``item_id, response_id, text, score, split``, and optionally group columns
  ``group:<name>`` (for example ``group:school``, ``group:gender``: a value per answer, blank when
  unknown) that model cards report results by. An answer to an analytic item gives each
  criterion's score in ``score:<name>``; ``score`` is their sum (blank: computed).
  A reader that accepts answers without scores (``unscored=``) takes an empty ``score`` (and no
  criterion score) as "needs a human score".

Every problem is reported as a :class:`DataFormatError` naming the 1-based data row (the header
is row 1, so the first answer is row 2) and the column, so an admin can fix the file. Readers
validate the whole file before returning anything, so callers never see half a file.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ITEM_COLUMNS = ("item_id", "language", "prompt", "reference_answer", "max_score")
RESPONSE_COLUMNS = ("item_id", "response_id", "text", "score", "split")
SPLITS = ("train", "val", "test", "")
LANGUAGES = ("en", "de")
MAX_SCORE_LIMIT = 100
MAX_TEXT_CHARS = 20_000
MAX_ID_CHARS = 200
MAX_TITLE_CHARS = 200
MAX_FEEDBACK_CHARS = 2000
FEEDBACK_COLUMN = re.compile(r"^feedback_(\d+)$")
GROUP_PREFIX = "group:"
GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
MAX_GROUP_COLUMNS = 10
MAX_GROUP_VALUE_CHARS = 100
CRITERION_PREFIX = "criterion:"
CRITERION_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}"
CRITERION_COLUMN = re.compile(rf"^criterion:({CRITERION_NAME})(?::feedback_(\d+))?$")
CRITERION_SCORE_PREFIX = "score:"
CRITERION_SCORE_COLUMN = re.compile(rf"^score:({CRITERION_NAME})$")
MAX_CRITERIA = 10
ITEM_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
"""Item ids are slugs: they name folders and URL segments, so no '/', spaces or other marks."""

# Answers in the SAF data can be long; the csv module's default field limit (128 KiB) is enough,
# but raise it so a long field gets our own clear error instead of csv.Error.
csv.field_size_limit(1 << 24)


class DataFormatError(ValueError):
    """A row or column of an uploaded file is wrong. ``row`` is 1-based and counts the header."""

    def __init__(self, message: str, *, row: int | None = None, column: str | None = None) -> None:
        self.row = row
        self.column = column
        self.reason = message
        where = []
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


@dataclass(frozen=True)
class CriterionRecord:
    """One named criterion of an analytic item: scores run 0..``max_score``."""

    name: str
    max_score: int
    feedback: tuple[tuple[int, str], ...] = ()
    """(criterion score, text a student reads with it)."""


@dataclass(frozen=True)
class ItemRecord:
    item_id: str
    language: str
    prompt: str
    reference_answer: str
    max_score: int
    row: int = field(default=0, compare=False)
    """The row of ``items.csv`` it came from (0 when not read from a file)."""
    title: str = ""
    feedback: tuple[tuple[int, str], ...] = ()
    """(score, text a student reads with that score), from the ``feedback_<score>`` columns."""
    criteria: tuple[CriterionRecord, ...] = ()
    """The rubric's criteria in column order (empty: a holistic item)."""


@dataclass(frozen=True)
class ResponseRecord:
    item_id: str
    response_id: str
    text: str
    score: int
    split: str
    groups: tuple[tuple[str, str], ...] = ()
    """(group name, value) from the ``group:<name>`` columns; blank values are left out."""
    criteria: tuple[tuple[str, int], ...] = ()
    """(criterion name, score) from the ``score:<name>`` columns, in the item's criterion order."""


@dataclass(frozen=True)
class UnscoredRecord:
    """An answer of ``responses.csv`` whose ``score`` is empty: it waits for a human score."""

    item_id: str
    response_id: str
    text: str
    row: int = field(default=0, compare=False)


Source = str | Path | bytes | IO[str]


def _open_text(source: Source) -> IO[str]:
    """Bytes are decoded as UTF-8 (a BOM is accepted); a path is opened; a text stream is used."""
    if isinstance(source, bytes):
        try:
            return io.StringIO(source.decode("utf-8-sig"), newline="")
        except UnicodeDecodeError as exc:
            raise DataFormatError(
                f"the file is not UTF-8 text (bad byte at offset {exc.start})"
            ) from exc
    if isinstance(source, (str, Path)):
        data = Path(source).read_bytes()
        return _open_text(data)
    return source


def _rows(source: Source, columns: Iterable[str]) -> Iterable[tuple[int, dict[str, str]]]:
    stream = _open_text(source)
    reader = csv.DictReader(stream)
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise DataFormatError(f"not a CSV file: {exc}", row=1) from exc
    if not header:
        raise DataFormatError("the file is empty; expected a header row", row=1)
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataFormatError(
            f"missing column(s) {', '.join(missing)}; the header must name {', '.join(columns)}",
            row=1,
            column=missing[0],
        )
    row = 1
    try:
        # Rows are counted as a spreadsheet shows them: an answer spanning lines is one row.
        for row, record in enumerate(reader, start=2):
            if None in record:
                raise DataFormatError("more fields than the header names", row=row)
            yield row, {k: (v if v is not None else "") for k, v in record.items()}
    except csv.Error as exc:
        raise DataFormatError(f"malformed CSV: {exc}", row=row + 1) from exc


def _required(value: str, row: int, column: str, limit: int) -> str:
    value = value.strip()
    if not value:
        raise DataFormatError("must not be empty", row=row, column=column)
    if len(value) > limit:
        raise DataFormatError(f"longer than {limit} characters", row=row, column=column)
    return value


def _integer(value: str, row: int, column: str, low: int, high: int) -> int:
    text = value.strip()
    try:
        number = int(text)
    except ValueError:
        # "2.0" is how spreadsheets often save whole numbers; accept only exact integers
        try:
            as_float = float(text)
        except ValueError:
            as_float = math.nan
        if not as_float.is_integer():
            raise DataFormatError(
                f"'{value}' is not a whole number", row=row, column=column
            ) from None
        number = int(as_float)
    if not low <= number <= high:
        raise DataFormatError(f"{number} is outside {low}..{high}", row=row, column=column)
    return number


def _feedback(rec: Mapping[str, str], row: int, max_score: int) -> tuple[tuple[int, str], ...]:
    """The non-empty ``feedback_<score>`` cells of a row, each for a score within 0..max."""
    out = []
    for column, value in rec.items():
        match = FEEDBACK_COLUMN.match(column or "")
        text = (value or "").strip()
        if match is None or not text:
            continue
        score = int(match.group(1))
        if score > max_score:
            raise DataFormatError(
                f"feedback for score {score}, but the item's max_score is {max_score}",
                row=row,
                column=column,
            )
        if len(text) > MAX_FEEDBACK_CHARS:
            raise DataFormatError(
                f"longer than {MAX_FEEDBACK_CHARS} characters", row=row, column=column
            )
        out.append((score, text))
    return tuple(sorted(out))


def _criterion_columns(header: Iterable[str]) -> list[str]:
    """The criterion names of an ``items.csv`` header, in column order; a column that starts
    with ``criterion`` but is not ``criterion:<name>[:feedback_<score>]`` is a header error, and
    so is feedback for a criterion without its own column."""
    names: list[str] = []
    feedback_of: list[tuple[str, str]] = []
    for column in header:
        if not (column or "").startswith("criterion"):
            continue
        match = CRITERION_COLUMN.match(column)
        if match is None:
            raise DataFormatError(
                "a criterion column is criterion:<name> (its highest score) or "
                "criterion:<name>:feedback_<score>, the name 1-40 letters, digits, '.', '_' or '-'",
                row=1,
                column=column,
            )
        if match.group(2) is None:
            names.append(match.group(1))
        else:
            feedback_of.append((match.group(1), column))
    for name, column in feedback_of:
        if name not in names:
            raise DataFormatError(
                f"feedback for criterion '{name}', but there is no column criterion:{name}",
                row=1,
                column=column,
            )
    if len(names) > MAX_CRITERIA:
        raise DataFormatError(
            f"at most {MAX_CRITERIA} criteria", row=1, column=CRITERION_PREFIX + names[MAX_CRITERIA]
        )
    return names


def _criterion_feedback(
    rec: Mapping[str, str], row: int, name: str, max_score: int | None
) -> tuple[tuple[int, str], ...]:
    """The non-empty ``criterion:<name>:feedback_<score>`` cells of a row (``max_score`` None:
    the item has no such criterion, so any text is an error)."""
    out = []
    for column, value in rec.items():
        match = CRITERION_COLUMN.match(column or "")
        text = (value or "").strip()
        if match is None or match.group(1) != name or match.group(2) is None or not text:
            continue
        score = int(match.group(2))
        if max_score is None:
            raise DataFormatError(
                f"feedback for criterion '{name}', but this item has no score in criterion:{name}",
                row=row,
                column=column,
            )
        if score > max_score:
            raise DataFormatError(
                f"feedback for score {score}, but criterion '{name}' goes up to {max_score}",
                row=row,
                column=column,
            )
        if len(text) > MAX_FEEDBACK_CHARS:
            raise DataFormatError(
                f"longer than {MAX_FEEDBACK_CHARS} characters", row=row, column=column
            )
        out.append((score, text))
    return tuple(sorted(out))


def _criteria(
    rec: Mapping[str, str], row: int, names: Sequence[str], max_score: int
) -> tuple[CriterionRecord, ...]:
    """The row's criteria (a blank ``criterion:<name>`` cell: not one of this item's), checked:
    at least two, their highest scores adding up to the item's ``max_score``."""
    found = []
    for name in names:
        column = CRITERION_PREFIX + name
        if not rec[column].strip():
            _criterion_feedback(rec, row, name, None)
            continue
        high = _integer(rec[column], row, column, 1, MAX_SCORE_LIMIT)
        found.append(CriterionRecord(name, high, _criterion_feedback(rec, row, name, high)))
    if len(found) == 1:
        raise DataFormatError(
            "an analytic item needs at least two criteria (one criterion is the holistic score)",
            row=row,
            column=CRITERION_PREFIX + found[0].name,
        )
    total = sum(c.max_score for c in found)
    if found and total != max_score:
        raise DataFormatError(
            f"{max_score} is not the sum of the criteria's highest scores "
            f"({' + '.join(str(c.max_score) for c in found)} = {total})",
            row=row,
            column="max_score",
        )
    return tuple(found)


def read_items_csv(source: Source) -> list[ItemRecord]:
    """Parse and validate an ``items.csv``; raises :class:`DataFormatError` on the first problem."""
    items: list[ItemRecord] = []
    seen: dict[str, int] = {}
    criteria: list[str] | None = None
    for row, rec in _rows(source, ITEM_COLUMNS):
        if criteria is None:
            criteria = _criterion_columns(rec)
        for column in rec:
            if (column or "").startswith("feedback") and not FEEDBACK_COLUMN.match(column):
                raise DataFormatError(
                    f"'{column}' is not a feedback column; name them feedback_0, feedback_1, ...",
                    row=1,
                    column=column,
                )
        item_id = _required(rec["item_id"], row, "item_id", MAX_ID_CHARS)
        if item_id in seen:
            raise DataFormatError(
                f"item '{item_id}' already appears in row {seen[item_id]}",
                row=row,
                column="item_id",
            )
        seen[item_id] = row
        if not re.match(ITEM_ID_PATTERN, item_id):
            raise DataFormatError(
                f"'{item_id}' is not a valid item id: start with a letter or digit and use only "
                "letters, digits, '.', '_' and '-' (no spaces or '/')",
                row=row,
                column="item_id",
            )
        language = rec["language"].strip().lower()
        if language not in LANGUAGES:
            raise DataFormatError(
                f"'{rec['language']}' is not one of {', '.join(LANGUAGES)}",
                row=row,
                column="language",
            )
        max_score = _integer(rec["max_score"], row, "max_score", 1, MAX_SCORE_LIMIT)
        title = rec.get("title", "").strip()
        if len(title) > MAX_TITLE_CHARS:
            raise DataFormatError(
                f"longer than {MAX_TITLE_CHARS} characters", row=row, column="title"
            )
        items.append(
            ItemRecord(
                item_id=item_id,
                language=language,
                prompt=_required(rec["prompt"], row, "prompt", MAX_TEXT_CHARS),
                reference_answer=rec["reference_answer"].strip()[:MAX_TEXT_CHARS],
                max_score=max_score,
                row=row,
                title=title,
                feedback=_feedback(rec, row, max_score),
                criteria=_criteria(rec, row, criteria, max_score),
            )
        )
    if not items:
        raise DataFormatError("the file has a header but no items", row=2)
    return items


def _group_columns(columns: Iterable[str]) -> list[str]:
    """The ``group:<name>`` columns of a header, checked (a bad name is a header error)."""
    found = [c for c in columns if c.startswith(GROUP_PREFIX)]
    for column in found:
        if not GROUP_NAME.match(column[len(GROUP_PREFIX) :]):
            raise DataFormatError(
                "a group column is named group:<name>, the name 1-40 letters, digits, "
                "'.', '_' or '-'",
                row=1,
                column=column,
            )
    if len(found) > MAX_GROUP_COLUMNS:
        raise DataFormatError(
            f"at most {MAX_GROUP_COLUMNS} group columns", row=1, column=found[MAX_GROUP_COLUMNS]
        )
    return found


def _group_values(
    rec: Mapping[str, str], columns: Sequence[str], row: int
) -> tuple[tuple[str, str], ...]:
    values = []
    for column in columns:
        value = rec[column].strip()
        if len(value) > MAX_GROUP_VALUE_CHARS:
            raise DataFormatError(
                f"longer than {MAX_GROUP_VALUE_CHARS} characters", row=row, column=column
            )
        if value:
            values.append((column[len(GROUP_PREFIX) :], value))
    return tuple(values)


def _criterion_score_columns(columns: Iterable[str]) -> list[str]:
    """The ``score:<name>`` columns of a ``responses.csv`` header (a bad name is a header error)."""
    found = [c for c in columns if c.startswith(CRITERION_SCORE_PREFIX)]
    for column in found:
        if not CRITERION_SCORE_COLUMN.match(column):
            raise DataFormatError(
                "a criterion score column is score:<name>, the name 1-40 letters, digits, "
                "'.', '_' or '-'",
                row=1,
                column=column,
            )
    return found


def _criterion_scores(
    rec: Mapping[str, str], row: int, columns: Sequence[str], item: ItemRecord | None
) -> tuple[tuple[str, int], ...]:
    """The row's criterion scores in the item's criterion order; () when none is given. With an
    item, each must be one of its criteria, and an answer scored on one is scored on all."""
    given = {c[len(CRITERION_SCORE_PREFIX) :]: rec[c].strip() for c in columns if rec[c].strip()}
    if item is None:
        return tuple(
            (name, _integer(value, row, CRITERION_SCORE_PREFIX + name, 0, MAX_SCORE_LIMIT))
            for name, value in given.items()
        )
    names = [c.name for c in item.criteria]
    for name in given:
        if name not in names:
            raise DataFormatError(
                f"item '{item.item_id}' has no criterion '{name}'"
                + (f" (its criteria: {', '.join(names)})" if names else ""),
                row=row,
                column=CRITERION_SCORE_PREFIX + name,
            )
    if not given:
        return ()
    scores = []
    for criterion in item.criteria:
        column = CRITERION_SCORE_PREFIX + criterion.name
        if column not in rec:
            raise DataFormatError(
                f"missing column: item '{item.item_id}' is scored on {', '.join(names)}",
                row=row,
                column=column,
            )
        if criterion.name not in given:
            raise DataFormatError(
                "must not be empty: every criterion of an analytic item is scored",
                row=row,
                column=column,
            )
        scores.append(
            (criterion.name, _integer(given[criterion.name], row, column, 0, criterion.max_score))
        )
    return tuple(scores)


def _total(
    rec: Mapping[str, str],
    row: int,
    high: int,
    criteria: Sequence[tuple[str, int]],
    item: ItemRecord | None,
) -> int:
    """The answer's score: the ``score`` cell, else the sum of its criterion scores; with both,
    they must agree. An analytic item's answer must give its criterion scores."""
    if item is not None and item.criteria and not criteria:
        raise DataFormatError(
            f"item '{item.item_id}' is analytic: give each criterion's score in "
            + ", ".join(CRITERION_SCORE_PREFIX + c.name for c in item.criteria),
            row=row,
            column=CRITERION_SCORE_PREFIX + item.criteria[0].name,
        )
    total = sum(score for _, score in criteria)
    if not rec["score"].strip():
        return total
    score = _integer(rec["score"], row, "score", 0, high)
    if criteria and score != total:
        raise DataFormatError(
            f"{score} is not the sum of the criterion scores ({total})", row=row, column="score"
        )
    return score


def read_responses_csv(
    source: Source,
    items: Mapping[str, ItemRecord] | None = None,
    *,
    unscored: list[UnscoredRecord] | None = None,
) -> list[ResponseRecord]:
    """Parse and validate a ``responses.csv``.

    With ``items`` (item_id -> record), every answer must belong to a known item and its score
    must be within ``0..max_score`` of that item. With ``unscored`` (a list to fill), a row with
    an empty ``score`` is an answer without a score: it is appended there instead of being an
    error. The scored answers are returned.
    """
    responses: list[ResponseRecord] = []
    seen: dict[str, int] = {}
    groups: list[str] | None = None
    score_columns: list[str] = []
    for row, rec in _rows(source, RESPONSE_COLUMNS):
        if groups is None:
            groups = _group_columns(rec)
            score_columns = _criterion_score_columns(rec)
        item_id = _required(rec["item_id"], row, "item_id", MAX_ID_CHARS)
        high = MAX_SCORE_LIMIT
        item: ItemRecord | None = None
        if items is not None:
            item = items.get(item_id)
            if item is None:
                raise DataFormatError(f"unknown item '{item_id}'", row=row, column="item_id")
            high = item.max_score
        response_id = _required(rec["response_id"], row, "response_id", MAX_ID_CHARS)
        if response_id in seen:
            raise DataFormatError(
                f"response '{response_id}' already appears in row {seen[response_id]}",
                row=row,
                column="response_id",
            )
        seen[response_id] = row
        text = rec["text"]
        if len(text) > MAX_TEXT_CHARS:
            raise DataFormatError(
                f"answer longer than {MAX_TEXT_CHARS} characters", row=row, column="text"
            )
        split = rec["split"].strip().lower()
        if split not in SPLITS:
            raise DataFormatError(
                f"'{rec['split']}' is not one of train, val, test or blank", row=row, column="split"
            )
        criteria = _criterion_scores(rec, row, score_columns, item)
        if not rec["score"].strip() and not criteria:
            if unscored is None:
                raise DataFormatError("must not be empty", row=row, column="score")
            unscored.append(UnscoredRecord(item_id, response_id, text, row))
            continue
        responses.append(
            ResponseRecord(
                item_id=item_id,
                response_id=response_id,
                text=text,
                score=_total(rec, row, high, criteria, item),
                split=split,
                groups=_group_values(rec, groups, row),
                criteria=criteria,
            )
        )
    if not responses and not unscored:
        raise DataFormatError("the file has a header but no answers", row=2)
    return responses
