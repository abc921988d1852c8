"""Which MCP tools a job's agent is offered, and the per-process cache of the server's tool list.

Read-only by default: whatever mode the server runs in, a job is offered only the tools the
server marks ``readOnlyHint: true`` (or the names in ``AGENTQ_READ_TOOLS``). A tool with no
annotation counts as a write tool. Write tools are offered only when the job asked for them
(``allow_writes``) *and* the deployment allows it (``AGENTQ_ALLOW_WRITE_TOOLS``); the producer
already refuses the first without the second, and the worker checks both again.

The tool list is the same for every user of a server, so a process lists tools once per
``AGENTQ_TOOLS_CACHE_SECONDS`` (one job fetches it while the others wait) and every job's agent
is given tools built from that listing (``worker.tool_bridge``): a job sends no ``tools/list``.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from mcp.client.session import ClientSession
from mcp.types import PaginatedRequestParams, Tool

from agentq.errors import AgentqError, ErrorCode
from agentq.settings import Settings

# A server that pages its listing further than this is refused rather than followed forever.
MAX_LIST_PAGES = 50


def is_read_only(tool: Tool) -> bool:
    annotations = tool.annotations
    return bool(annotations is not None and annotations.read_only_hint is True)


def read_tool_names(settings: Settings) -> frozenset[str] | None:
    """The configured read tools, or None to go by the server's annotations."""
    if not settings.read_tools:
        return None
    return frozenset(name.strip() for name in settings.read_tools.split(",") if name.strip())


@dataclass(frozen=True)
class ToolPolicy:
    """Which tools one job is offered. Hashable: the tools built for a policy are kept per
    policy (``worker.tool_bridge``), and a deployment has at most a few."""

    writes: bool
    read_names: frozenset[str] | None

    @classmethod
    def for_job(cls, settings: Settings, allow_writes: bool) -> ToolPolicy:
        return cls(allow_writes and settings.allow_write_tools, read_tool_names(settings))

    def offers(self, tool: Tool) -> bool:
        if self.writes:
            return True
        if self.read_names is not None:
            return tool.name in self.read_names
        return is_read_only(tool)

    def may_resend(self, tool: Tool | None, name: str) -> bool:
        """Whether a call of ``name`` may be sent twice (``worker.mcp_transport``): any call of a
        job that may not write (it is offered read tools only); otherwise only a tool known to
        read: a configured read tool, or one the listing marks ``readOnlyHint``."""
        if not self.writes:
            return True
        if self.read_names is not None:
            return name in self.read_names
        return tool is not None and is_read_only(tool)


@dataclass(frozen=True)
class Listing:
    """One complete tool listing of one server, and a version that changes when it does."""

    url: str
    tools: tuple[Tool, ...]
    version: str

    @classmethod
    def of(cls, url: str, tools: list[Tool]) -> Listing:
        digest = hashlib.sha256()
        for tool in tools:
            digest.update(tool.model_dump_json(by_alias=True, exclude_none=True).encode())
        return cls(url, tuple(tools), digest.hexdigest()[:16])

    def find(self, name: str) -> Tool | None:
        return next((tool for tool in self.tools if tool.name == name), None)


def resendable_tools(
    policy: ToolPolicy, listing: Callable[[], Listing | None]
) -> Callable[[str], bool]:
    """The MCP transport's question "may this call go twice?", for one job."""

    def resendable(name: str) -> bool:
        current = listing()
        return policy.may_resend(current.find(name) if current else None, name)

    return resendable


class ToolsCache:
    """The server's full tool list (before any policy), kept ``ttl`` seconds per process."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Listing]] = {}
        self._fetching: asyncio.Lock | None = None  # made on the loop that uses it

    def cached(self, url: str) -> Listing | None:
        """The fresh listing of ``url``, if this process has one."""
        with self._lock:
            entry = self._entries.get(url)
        return entry[1] if entry is not None and entry[0] > time.monotonic() else None

    async def listing(self, session: ClientSession, url: str) -> tuple[Listing, bool]:
        """The listing, and whether it came from the cache; fetched on ``session`` (the job's
        own) on a miss. One job fetches while the others wait: a cold process with 200 jobs in
        flight sends one ``tools/list``, not 200. A failed fetch raises (classified by the
        caller) and caches nothing."""
        found = self.cached(url)
        if found is not None:
            return found, True
        if self._fetching is None:
            self._fetching = asyncio.Lock()
        async with self._fetching:
            found = self.cached(url)
            if found is not None:
                return found, True
            listing = Listing.of(url, await list_all_tools(session))
            if self._ttl > 0:
                with self._lock:
                    self._entries[url] = (time.monotonic() + self._ttl, listing)
            return listing, False


async def list_all_tools(session: ClientSession) -> list[Tool]:
    """Every tool of the server, following its pages."""
    tools: list[Tool] = []
    cursor: str | None = None
    for _page in range(MAX_LIST_PAGES):
        params = PaginatedRequestParams(cursor=cursor) if cursor else None
        result = await session.list_tools(params=params)
        tools.extend(result.tools)
        cursor = result.next_cursor
        if not cursor:
            return tools
    raise AgentqError(
        f"the MCP server's tool list runs past {MAX_LIST_PAGES} pages",
        code=ErrorCode.MCP_UNAVAILABLE,
    )
