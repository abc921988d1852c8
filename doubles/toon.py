"""TOON (Token-Oriented Object Notation), the text format infrahub-mcp 1.2.0 answers in.

The real server renders schema detail, attribute rows and traversal results as TOON: objects as
indented ``key: value`` lines, arrays of flat objects as a table whose field names are declared
once. The MCP double must send the same text, so it needs an encoder; this is the subset of TOON
those answers use. It knows nothing of Infrahub: it turns JSON-like data into text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["toon_encode"]

_BARE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_NUMBER_LIKE = re.compile(r"^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$")


def _toon_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    needs_quotes = (
        text == ""
        or text != text.strip()
        or text in ("true", "false", "null")
        or _NUMBER_LIKE.match(text) is not None
        or text.startswith("-")
        or any(c in text for c in ',:"\\[]{}\n\r\t')
    )
    return json.dumps(text, ensure_ascii=False) if needs_quotes else text


def _toon_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _tabular_fields(items: Sequence[Any]) -> list[str] | None:
    """Field names if every item is a dict with the same keys and only scalar values."""
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    fields = list(items[0])
    for item in items:
        if list(item) != fields or not all(_is_scalar(v) for v in item.values()):
            return None
    return fields


def _toon_array(key: str, items: Sequence[Any], indent: int) -> list[str]:
    pad = "  " * indent
    header = f"{pad}{key}[{len(items)}]"
    if all(_is_scalar(i) for i in items):
        return [f"{header}: {','.join(_toon_scalar(i) for i in items)}".rstrip()]
    fields = _tabular_fields(items)
    if fields is not None:
        lines = [f"{header}{{{','.join(_toon_key(f) for f in fields)}}}:"]
        lines += [f"{pad}  {','.join(_toon_scalar(i[f]) for f in fields)}" for i in items]
        return lines
    lines = [f"{header}:"]
    for item in items:
        if isinstance(item, dict) and item:
            body = _toon_object(item, indent + 2)
            lines.append(f"{pad}  - {body[0].lstrip()}")
            lines += body[1:]
        elif isinstance(item, list):
            nested = _toon_array("", item, indent + 2)
            lines.append(f"{pad}  - {nested[0].lstrip()}")
            lines += nested[1:]
        else:
            lines.append(f"{pad}  - {_toon_scalar(item) if _is_scalar(item) else ''}")
    return lines


def _toon_object(data: Mapping[str, Any], indent: int) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    for key, value in data.items():
        name = _toon_key(str(key))
        if isinstance(value, dict):
            lines.append(f"{pad}{name}:")
            lines += _toon_object(value, indent + 1)
        elif isinstance(value, list | tuple):
            lines += _toon_array(name, list(value), indent)
        else:
            lines.append(f"{pad}{name}: {_toon_scalar(value)}")
    return lines


def toon_encode(value: Any) -> str:
    """Encode JSON-like data as TOON text (a subset sufficient for the double's answers)."""
    if isinstance(value, dict):
        return "\n".join(_toon_object(value, 0))
    if isinstance(value, list | tuple):
        return "\n".join(_toon_array("", list(value), 0))
    return _toon_scalar(value)
