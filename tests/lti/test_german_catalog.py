"""The student- and teacher-facing strings in German: every message of the catalogue has a
translation, keeps its placeholders, and the compiled catalogue is the one Django serves."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest
from django.utils import translation

CATALOG = Path(__file__).resolve().parents[2] / "scoring_plugin" / "locale" / "de" / "LC_MESSAGES"
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _entries() -> list[tuple[str, str, bool]]:
    """(msgid, msgstr, fuzzy) of every message in django.po, the header left out."""
    out = []
    for block in (CATALOG / "django.po").read_text(encoding="utf-8").split("\n\n"):
        lines = block.strip().splitlines()
        keys = [i for i, line in enumerate(lines) if line.startswith(("msgid ", "msgstr "))]
        if len(keys) != 2:
            continue
        msgid = "".join(re.findall(r'"(.*)"', "\n".join(lines[keys[0] : keys[1]])))
        msgstr = "".join(re.findall(r'"(.*)"', "\n".join(lines[keys[1] :])))
        fuzzy = any(line.startswith("#,") and "fuzzy" in line for line in lines)
        if msgid:
            out.append((msgid, msgstr, fuzzy))
    return out


def test_every_message_has_a_german_translation_with_its_placeholders() -> None:
    entries = _entries()
    assert len(entries) > 30
    missing = [msgid for msgid, msgstr, fuzzy in entries if not msgstr or fuzzy]
    assert missing == []
    for msgid, msgstr, _ in entries:
        assert sorted(_PLACEHOLDER.findall(msgid)) == sorted(_PLACEHOLDER.findall(msgstr)), msgid


def test_the_compiled_catalogue_matches_the_source() -> None:
    with open(CATALOG / "django.mo", "rb") as handle:
        compiled = gettext.GNUTranslations(handle)._catalog  # type: ignore[attr-defined]
    for msgid, msgstr, _ in _entries():
        assert compiled.get(_unescape(msgid)) == _unescape(msgstr), msgid


def _unescape(text: str) -> str:
    return text.replace('\\"', '"').replace("\\n", "\n")


@pytest.mark.parametrize(
    ("english", "german"),
    [
        ("Score per criterion", "Punkte je Kriterium"),
        ("Open in a new window", "In einem neuen Fenster öffnen"),
    ],
)
def test_django_serves_the_german_strings(english: str, german: str) -> None:
    with translation.override("de"):
        assert translation.gettext(english) == german
