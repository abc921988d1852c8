"""TOON (Token-Oriented Object Notation), the text format infrahub-mcp 1.2.0 answers in.

The real server renders schema detail, attribute rows and traversal results as TOON with the
``toonify`` package (1.6.0 in its pinned set): objects as indented ``key: value`` lines, arrays
of flat objects as a table whose field names are declared once, arrays of scalars inline
(``[a,b]``, ``[]`` when empty). The MCP double must send the same text, so this encoder writes
what toonify writes for the values the double produces, quoting and all: a string is quoted
only when it is empty, padded, reads as ``true``/``false``/``null`` in any case, or holds one of
``, : " \\ [ ] { } | tab newline`` (a number in a string stays bare, as toonify leaves it);
floats are written without an exponent between 1e-100 and 1e100, NaN and infinities as null.
The contract tests (``tests/test_contract_infrahub_mcp.py``) compare the two byte for byte. It
knows nothing of Infrahub: it turns JSON-like data into text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["toon_encode"]

# A string is quoted when it is empty, padded, reads as a literal, or holds one of these.
_SPECIAL = frozenset(',:\n"\t|\\[]{}')


def _toon_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value or value in (math.inf, -math.inf):
            return "null"
        if value == 0:
            return "0"
        text = str(value)
        if "e" not in text:
            return text.rstrip("0").rstrip(".") if "." in text else text
        if not 1e-100 <= abs(value) < 1e100:
            return text
        fixed = f"{value:.10f}" if abs(value) >= 1 else f"{value:.15f}"
        return fixed.rstrip("0").rstrip(".")
    if isinstance(value, int):
        return str(value)
    text = str(value)
    needs_quotes = (
        text == ""
        or text != text.strip()
        or text.lower() in ("true", "false", "null")
        or any(c in _SPECIAL for c in text)
    )
    if not needs_quotes:
        return text
    for raw, escaped in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\t", "\\t"), ("\r", "\\r")):
        text = text.replace(raw, escaped)
    return f'"{text}"'


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _tabular_fields(items: Sequence[Any]) -> list[str] | None:
    """Field names if every item is a dict with the same keys and only scalar values."""
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    fields = list(items[0])
    if not fields or not all(_is_scalar(v) for v in items[0].values()):
        return None
    for item in items[1:]:
        if set(item) != set(fields) or not all(_is_scalar(v) for v in item.values()):
            return None
    return fields


def _toon_array(key: str, items: Sequence[Any], indent: int) -> str:
    """An array: ``[]``, a table, ``[a,b]`` inline, or a ``- item`` list (with ``key`` in its
    header; the caller puts a one-line answer after ``key: ``)."""
    pad = "  " * indent
    if not items:
        return "[]"
    fields = _tabular_fields(items)
    if fields is not None:
        lines = [f"{pad if key else ''}{key}[{len(items)}]{{{','.join(fields)}}}:"]
        lines += [f"{pad}  {','.join(_toon_scalar(i.get(f)) for f in fields)}" for i in items]
        return "\n".join(lines)
    if all(_is_scalar(i) for i in items):
        return f"[{','.join(_toon_scalar(i) for i in items)}]"
    lines = [f"{pad if key else ''}{key}[{len(items)}]:"]
    for item in items:
        if isinstance(item, dict) and item:
            body = _toon_value(item, indent + 2).split("\n")
            lines.append(f"{pad}  - {body[0].lstrip()}")
            lines += body[1:]
        else:
            lines.append(f"{pad}  - {_toon_value(item, indent + 1)}")
    return "\n".join(lines)


def _toon_object(data: Mapping[str, Any], indent: int) -> str:
    if not data:
        return "{}"
    pad = "  " * indent
    lines: list[str] = []
    for key, value in data.items():
        if isinstance(value, list | tuple):
            encoded = _toon_array(str(key), list(value), indent)
            lines.append(encoded if "\n" in encoded else f"{pad}{key}: {encoded}")
        elif isinstance(value, dict):
            if value:
                lines += [f"{pad}{key}:", _toon_object(value, indent + 1)]
            else:
                lines.append(f"{pad}{key}: {{}}")
        else:
            lines.append(f"{pad}{key}: {_toon_scalar(value)}")
    return "\n".join(lines)


def _toon_value(value: Any, indent: int) -> str:
    if isinstance(value, dict):
        return _toon_object(value, indent)
    if isinstance(value, list | tuple):
        return _toon_array("", list(value), indent)
    return _toon_scalar(value)


def toon_encode(value: Any) -> str:
    """Encode JSON-like data as TOON text, as the real server's encoder does."""
    return _toon_value(value, 0)
