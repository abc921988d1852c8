"""How the real server's framework (FastMCP) renders what it sends, copied so the bytes match.

infrahub-mcp 1.2.0 is a FastMCP app: tool results are compact JSON text or the tool's own text,
with ``structuredContent`` (a dict as it is, anything else wrapped as ``{"result": ...}``), and
every prompt and resource it lists carries FastMCP's ``_meta`` tags.
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

    A dict becomes compact JSON text plus ``structuredContent``. Text stays text, and a list
    becomes one JSON text block (no content at all when empty); both are also sent as
    ``structuredContent`` ``{"result": ...}``, flagged ``_meta.fastmcp.wrap_result``, as FastMCP
    wraps a return value that is not an object (even though the tools declare no output schema).
    """
    if isinstance(output, dict):
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json_text(output))],
            structured_content=output,
        )
    wrapped: Any = output if isinstance(output, str) else list(output)
    if isinstance(wrapped, str):
        content = [types.TextContent(type="text", text=wrapped)]
    else:
        content = [types.TextContent(type="text", text=json_text(wrapped))] if wrapped else []
    return types.CallToolResult.model_validate(
        {
            "content": content,
            "structuredContent": {"result": wrapped},
            "_meta": {"fastmcp": {"wrap_result": True}},
        }
    )
