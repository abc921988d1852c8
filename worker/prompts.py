"""The agent's instructions: the MCP server's own ``infrahub_agent`` prompt, cached per process.

MCP clients never fetch prompts by themselves, so the worker asks for it. The text is the same for
every user of one server, so a worker process keeps it for a short TTL instead of asking on every
job; a server upgrade is picked up when the entry expires.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from agents.mcp import MCPServer

from agentq.errors import AgentqError, ErrorCode


class PromptCache:
    """Prompt texts by (server name, prompt name), each kept ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._entries: dict[tuple[str, str], tuple[float, str]] = {}
        self._lock = asyncio.Lock()

    async def get(self, server: MCPServer, prompt: str) -> tuple[str, bool]:
        """The prompt's text, and whether it came from the cache."""
        key = (server.name, prompt)
        entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1], True
        async with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > time.monotonic():
                return entry[1], True
            text = await fetch_prompt_text(server, prompt)
            if self._ttl > 0:
                self._entries[key] = (time.monotonic() + self._ttl, text)
            return text, False


async def fetch_prompt_text(server: MCPServer, prompt: str) -> str:
    try:
        result = await server.get_prompt(prompt, {})
    except Exception as exc:
        if _is_missing_prompt(exc):
            raise AgentqError(
                f"the MCP server has no prompt named {prompt!r} (AGENTQ_PROMPT_NAME)",
                code=ErrorCode.CONFIG_ERROR,
            ) from None
        raise
    texts = [_message_text(message) for message in result.messages]
    text = "\n\n".join(t for t in texts if t)
    if not text:
        raise AgentqError(
            f"the MCP server's prompt {prompt!r} has no text", code=ErrorCode.CONFIG_ERROR
        )
    return text


def _message_text(message: Any) -> str:
    content = getattr(message, "content", None)
    text = getattr(content, "text", None)
    return text if isinstance(text, str) else ""


def _is_missing_prompt(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "unknown prompt" in text or ("prompt" in text and "not found" in text)
