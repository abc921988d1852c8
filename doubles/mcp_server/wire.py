"""How the real server's framework (FastMCP) renders what it sends, copied so the bytes match.

infrahub-mcp 1.2.0 is a FastMCP app: tool results are compact JSON text (a dict also as
``structuredContent``), and every prompt and resource it lists carries FastMCP's ``_meta`` tags.
A client that parses or compares these must see them exactly as it would in production.
"""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types

__all__ = ["FASTMCP_META", "json_text", "tool_result"]

# The ``_meta`` FastMCP puts on every prompt and resource it lists.
FASTMCP_META: dict[str, Any] = {"fastmcp": {"tags": []}}


def json_text(value: Any) -> str:
    """Compact JSON, as the real server serializes tool results."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def tool_result(output: Any) -> types.CallToolResult:
    """Wrap a tool's return value the way FastMCP does for the real server.

    Text stays text; a dict becomes compact JSON text plus ``structuredContent``; a list becomes
    one JSON text block (and no content at all when empty).
    """
    if isinstance(output, str):
        return types.CallToolResult(content=[types.TextContent(type="text", text=output)])
    if isinstance(output, dict):
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json_text(output))],
            structured_content=output,
        )
    items = list(output)
    content = [types.TextContent(type="text", text=json_text(items))] if items else []
    return types.CallToolResult(content=content)
