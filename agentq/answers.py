"""What shape an answer takes: free text (the default) or a list of items.

A nightly report is read for what changed. Free text can only be compared word by word; a list of
items (``answer_format: items``) can be compared exactly: items appear, disappear or change by
their key. The worker asks the model for items with the Agents SDK's structured output (an
``output_type`` whose JSON schema is :func:`items_schema`); the reply is checked here
(:func:`parse_items`) so that a job, a report row and a diff all hold the same validated list.

The schema is sent non-strict: OpenAI's strict mode forbids free-form item fields (every property
must be named in advance), and the point is that the model picks the fields the question needs. A
provider that enforces non-strict schemas (vLLM, llama.cpp) follows it; any other reply is
validated here, and one that does not fit fails the attempt as the model's error.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from agentq.errors import BadRequest

AnswerFormat = Literal["text", "items"]
ANSWER_FORMATS: tuple[AnswerFormat, ...] = ("text", "items")
DEFAULT_ITEM_KEY = "name"
ITEM_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
Item = dict[str, str | int | float | bool | None]


def check_answer_format(
    answer_format: str, item_key: str | None
) -> tuple[AnswerFormat, str | None]:
    """The answer format and item key of a submit, or BadRequest (one line)."""
    if answer_format not in ANSWER_FORMATS:
        raise BadRequest(
            f"answer_format must be one of {', '.join(ANSWER_FORMATS)}, not {answer_format!r}"
        )
    if item_key is not None:
        if answer_format != "items":
            raise BadRequest("item_key only applies with answer_format items")
        if not ITEM_KEY.match(item_key):
            raise BadRequest(
                "item_key must be a field name: letters, digits and '_' (at most 64), "
                "not starting with a digit"
            )
    if answer_format == "items":
        return "items", item_key or DEFAULT_ITEM_KEY
    return "text", None


def items_schema(item_key: str) -> dict[str, Any]:
    """The JSON schema the model is asked to answer in: ``{"items": [{<item_key>: ..., ...}]}``."""
    return {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "description": (
                    "Every item that answers the question, one object each; "
                    f"'{item_key}' identifies an item and the other fields describe it."
                ),
                "items": {
                    "type": "object",
                    "properties": {item_key: {"type": "string"}},
                    "required": [item_key],
                    "additionalProperties": {
                        "type": ["string", "number", "integer", "boolean", "null"]
                    },
                },
            }
        },
        "required": ["items"],
        "additionalProperties": False,
    }


def parse_items(text: str, item_key: str) -> list[Item]:
    """The items in a model's reply; ValueError saying what does not fit the schema."""
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError("the answer is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ValueError('the answer is not an object with an "items" list')
    items: list[Item] = []
    for number, raw in enumerate(data["items"], start=1):
        if not isinstance(raw, dict):
            raise ValueError(f"item {number} is not an object")
        item: Item = {}
        for field, value in raw.items():
            if isinstance(value, list | dict):
                value = json.dumps(value, sort_keys=True)  # nested data, kept as its JSON text
            item[str(field)] = value
        key = item.get(item_key)
        if key is None or str(key).strip() == "":
            raise ValueError(f"item {number} has no {item_key!r}")
        items.append(item)
    return items


def item_identity(item: Item, item_key: str | None) -> str:
    """What matches an item across two runs: its key's value, or (no key) the whole item."""
    if item_key is not None and item.get(item_key) is not None:
        return str(item[item_key])
    return json.dumps(item, sort_keys=True)


def items_text(items: list[Item], item_key: str) -> str:
    """The items as the one-line answer a person reads where only text fits (job lists, logs)."""
    if not items:
        return "0 items"
    keys = ", ".join(str(item.get(item_key)) for item in items)
    return f"{len(items)} item{'s' if len(items) != 1 else ''}: {keys}"


def item_columns(items: list[Item], item_key: str | None) -> list[str]:
    """The columns of an items table: the key first, then every other field in first-seen order."""
    columns: list[str] = [item_key] if item_key else []
    for item in items:
        for field in item:
            if field not in columns:
                columns.append(field)
    return columns
