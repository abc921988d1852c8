"""Which MCP tools a job's agent is offered, and the per-process cache of the server's tool list.

Read-only by default: whatever mode the server runs in, a job is offered only the tools the
server marks ``readOnlyHint: true`` (or the names in ``AGENTQ_READ_TOOLS``). A tool with no
annotation counts as a write tool. Write tools are offered only when the job asked for them
(``allow_writes``) *and* the deployment allows it (``AGENTQ_ALLOW_WRITE_TOOLS``); the producer
already refuses the first without the second, and the worker checks both again.

The SDK lists tools before every model turn, but caches per server object, and agentq makes one
server object per job (each carries its user's token). The list is the same for every user of a
server, so a process keeps it for ``AGENTQ_TOOLS_CACHE_SECONDS`` and seeds each job's server
(and its MCP client session, which would otherwise list tools to validate results) with it: a job
then sends no ``tools/list`` at all. Neither library has a public way to seed a list; the private
parts that do it are kept in ``worker.sdk_adapter``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from agents.mcp import MCPServerStreamableHttp, ToolFilterContext
from mcp.types import Tool

from agentq.settings import Settings
from worker.sdk_adapter import absorb_listing, cached_tools, give_tools

ToolFilter = Callable[[ToolFilterContext, Tool], bool]


def is_read_only(tool: Tool) -> bool:
    annotations = tool.annotations
    return bool(annotations is not None and annotations.read_only_hint is True)


def read_tool_names(settings: Settings) -> frozenset[str] | None:
    """The configured read tools, or None to go by the server's annotations."""
    if not settings.read_tools:
        return None
    return frozenset(name.strip() for name in settings.read_tools.split(",") if name.strip())


def tool_filter(settings: Settings, allow_writes: bool) -> ToolFilter:
    """The filter that decides, per tool, whether this job's agent sees it."""
    writes = allow_writes and settings.allow_write_tools
    configured = read_tool_names(settings)

    def offered(_context: ToolFilterContext, tool: Tool) -> bool:
        if writes:
            return True
        if configured is not None:
            return tool.name in configured
        return is_read_only(tool)

    return offered


def resendable_tools(
    settings: Settings, allow_writes: bool, tools: ToolsCache
) -> Callable[[str], bool]:
    """Which of this job's tool calls the MCP transport may send twice (``worker.mcp_transport``).

    A job that may not write is offered read tools only, so any call it makes is safe to repeat.
    A job that may write gets a resend only for tools known to read: the configured read tools,
    or those the server's cached list marks ``readOnlyHint`` (unknown counts as a write).
    """
    if not (allow_writes and settings.allow_write_tools):
        return lambda _name: True
    configured = read_tool_names(settings)

    def resendable(name: str) -> bool:
        if configured is not None:
            return name in configured
        tool = tools.find(settings.mcp_url, name)
        return tool is not None and is_read_only(tool)

    return resendable


class ToolsCache:
    """The server's full tool list (before filtering), kept ``ttl`` seconds per process."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, list[Tool]]] = {}
        self._fetching: asyncio.Lock | None = None  # made on the loop that uses it

    async def prime(self, server: MCPServerStreamableHttp, url: str) -> None:
        """Seed a connected server; on a miss, one job fetches the list while the others wait.

        Without this a cold process with 200 jobs in flight sends 200 ``tools/list``. If the
        fetch fails, nothing is cached and the SDK lists tools (and fails) the usual way.
        """
        if self.seed(server, url) or self._ttl <= 0:
            return
        if self._fetching is None:
            self._fetching = asyncio.Lock()
        async with self._fetching:
            if self.seed(server, url) or server.session is None:
                return
            try:
                result = await server.session.list_tools()
            except Exception:
                return
            if getattr(result, "next_cursor", None) or not result.tools:
                return  # a paged listing: leave it to the SDK
            with self._lock:
                self._entries[url] = (time.monotonic() + self._ttl, list(result.tools))
            self.seed(server, url)

    def seed(self, server: MCPServerStreamableHttp, url: str) -> bool:
        """Give a freshly connected server the cached list; True if there was one."""
        with self._lock:
            entry = self._entries.get(url)
        if entry is None or entry[0] <= time.monotonic():
            return False
        give_tools(server, entry[1])
        # The MCP client session lists tools again before checking a tool's result against its
        # output schema, unless it has seen a listing: give it the cached one (mcp 2.3's own
        # per-session cache; without it every job sends one tools/list).
        absorb_listing(server.session, entry[1])
        return True

    def find(self, url: str, name: str) -> Tool | None:
        """The cached description of tool ``name`` on ``url`` (even if stale), if any."""
        with self._lock:
            entry = self._entries.get(url)
        return next((tool for tool in entry[1] if tool.name == name), None) if entry else None

    def remember(self, server: MCPServerStreamableHttp, url: str) -> None:
        """Keep the list a server fetched, for the jobs after it."""
        tools = cached_tools(server)
        if self._ttl <= 0 or not tools:
            return
        with self._lock:
            entry = self._entries.get(url)
            if entry is None or entry[0] <= time.monotonic():
                self._entries[url] = (time.monotonic() + self._ttl, list(tools))
