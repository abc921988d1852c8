"""Asking the model for items: the Agents SDK's structured output with agentq's items schema.

The SDK's own ``AgentOutputSchema`` is built from a Python type and, non-strict, still validates
through pydantic; agentq's items have free-form fields (``agentq.answers``), so the schema and
its check are agentq's: this adapter hands them to the SDK through its public
``AgentOutputSchemaBase``. What it returns is the canonical ``{"items": [...]}`` JSON text, the
job's answer as it is stored, whatever spacing or nesting the model used.
"""

from __future__ import annotations

import json
from typing import Any

from agents import AgentOutputSchemaBase
from agents.exceptions import ModelBehaviorError

from agentq.answers import items_schema, parse_items


class ItemsOutput(AgentOutputSchemaBase):
    """The items answer format, keyed by ``item_key``."""

    def __init__(self, item_key: str) -> None:
        self.item_key = item_key

    def is_plain_text(self) -> bool:
        return False

    def name(self) -> str:
        return "items"

    def json_schema(self) -> dict[str, Any]:
        return items_schema(self.item_key)

    def is_strict_json_schema(self) -> bool:
        return False  # free-form item fields cannot be strict (see agentq.answers)

    def validate_json(self, json_str: str) -> str:
        try:
            items = parse_items(json_str, self.item_key)
        except ValueError as exc:
            raise ModelBehaviorError(f"the answer does not fit the items format: {exc}") from None
        return json.dumps({"items": items}, ensure_ascii=False)
