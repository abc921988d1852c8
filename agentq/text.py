"""Model, tool and user text is data: what makes it safe to show in a terminal or a report.

An answer, an error message from a tool, a question or a metadata value can hold anything,
including escape sequences that move a terminal's cursor, clear its screen or make a hidden
hyperlink (OSC 8), and bidi overrides that make text read differently from what it is. Every
place that shows such text strips those characters with ``printable``; each medium then escapes
what is special to it: rich markup in ``cli.render``, markdown (``md_text``) and CSV
(``csv_cell``) here, for reports and diffs alike.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

# C0 controls but tab and newline, DEL, the C1 range (0x9B alone is a CSI on some terminals), and
# the bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069).
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` without the characters that a terminal or a renderer would act on."""
    return _UNPRINTABLE.sub("", text)


def utc_time(timestamp: float | None) -> str:
    """A moment as every output shows it (``2026-12-05 02:00:00 UTC``); ``-`` for none."""
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# What makes a spreadsheet read a cell as a formula (OWASP "CSV injection"), with the full-width
# forms that some spreadsheets fold to the ASCII ones.
_FORMULA_START = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")


def csv_cell(value: Any) -> Any:
    """A cell no spreadsheet runs: text that could start a formula gets a leading ``'``.

    Numbers that agentq writes (tokens, seconds) stay numbers, negative or not; any text, the
    model's answer or a metadata value such as ``-1 day``, is neutralised, also when the
    dangerous character follows leading spaces or line breaks.
    """
    if value is None:
        return ""
    if isinstance(value, int | float):
        return value
    raw = str(value)
    text = printable(raw)  # stripping an escape sequence may bare a "=": look at both
    if any(t[:1] in _FORMULA_START or t.lstrip()[:1] in _FORMULA_START for t in (raw, text)):
        return "'" + text
    return text


# Markdown that model or tool text could use to make a link, an image, a code span, emphasis or
# a table cell of its own; each is escaped with a backslash (any ASCII punctuation may be).
_MD_SPECIAL = re.compile(r"([\\`*_~\[\]()!|])")
# Bare URLs that GFM renderers turn into links: "http://" and "www." lose their meaning.
_MD_BARE_LINK = re.compile(r"(?<=[A-Za-z0-9]):(?=//)|(?<![A-Za-z0-9])(?i:www)\.")


def md_text(value: Any) -> str:
    """Model, tool or user text as markdown that renders as that text and nothing else: no
    HTML, no link, image or autolink, one table cell on one line."""
    text = printable("" if value is None else str(value))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = _MD_BARE_LINK.sub(lambda m: m.group()[:-1] + "\\" + m.group()[-1], text)
    return text.replace("\n", "<br>")


def code_span(value: str) -> str:
    """An identifier of agentq's own (a batch id, an error code) as a code span."""
    return "`" + re.sub(r"[`|\n]", "", printable(value)) + "`"
