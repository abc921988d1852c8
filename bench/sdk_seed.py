"""The limit's seeding of the SDK's MCP server objects with a cached tool list (private parts).

The benchmark's limit (``bench.naive_agent``) is the bare SDK with the same caches as agentq's
worker, so that it sends no ``tools/list`` per run either: each run's server object is handed the
process's listing (``worker.tool_policy.ToolsCache``). Neither library has a public way to do
that, so this module does it with their private parts, and nothing else does. (agentq's worker
needs none of this: it gives the agent function tools built from the listing,
``worker.tool_bridge``, and never hands the SDK its MCP server.)

- openai-agents (``agents.mcp.MCPServerStreamableHttp``): ``_tools_list`` is the server's
  cached listing and ``_cache_dirty`` whether it must list again. The public ``cached_tools``
  property reads the list but deep-copies every tool on each read and ignores the dirty flag,
  and only ``invalidate_tools_cache`` writes the flag (to True): seeding needs both written.
- mcp (``mcp.client.session.ClientSession``): ``_absorb_tool_listing(result, *, complete)`` is
  how the session learns the tools' output schemas from a listing; without one it sends its own
  ``tools/list`` before it validates a tool's structured result. mcp's ``Client`` calls it the
  same way, for the listings its response cache serves.

Written against openai-agents 0.24.0 and mcp 2.3.0 (constraints.txt; pyproject.toml allows
0.24.x and 2.3.x). ``tests/test_bench_sdk_seed.py`` checks each of these against the installed
packages, by behaviour and signature, and fails naming what changed: an upgrade that moves them
is found there, not by a limit that suddenly lists tools on every run. At run time the mcp part
degrades to what the session does on its own (one ``tools/list`` more).
"""

from __future__ import annotations

from collections.abc import Sequence

from agents.mcp import MCPServerStreamableHttp
from mcp.client.session import ClientSession
from mcp.types import ListToolsResult, Tool

# The versions whose private parts this module was checked against (tests/test_bench_sdk_seed.py).
CHECKED_VERSIONS = {"openai-agents": "0.24.", "mcp": "2.3."}


def cached_tools(server: MCPServerStreamableHttp) -> list[Tool] | None:
    """The listing the server fetched and still trusts (None if it must list again), not copied:
    the caller copies what it keeps."""
    if server._cache_dirty:
        return None
    return server._tools_list


def give_tools(server: MCPServerStreamableHttp, tools: Sequence[Tool]) -> None:
    """Make ``tools`` the server's trusted listing: its next ``list_tools`` sends nothing."""
    server._tools_list = list(tools)
    server._cache_dirty = False


def absorb_listing(session: ClientSession | None, tools: Sequence[Tool]) -> bool:
    """Let an MCP client session learn ``tools`` (a complete listing) as if it had listed them;
    False if it could not (no session, or mcp changed), which costs one ``tools/list``."""
    absorb = getattr(session, "_absorb_tool_listing", None)
    if absorb is None:
        return False
    try:
        absorb(ListToolsResult(tools=list(tools)), complete=True)
    except Exception:  # a changed private API costs one tools/list, nothing more
        return False
    return True


def seed(server: MCPServerStreamableHttp, tools: Sequence[Tool]) -> None:
    """Give a connected server and its session a complete listing: the run sends no
    ``tools/list`` (the server's per-turn listing and the session's validation listing)."""
    give_tools(server, tools)
    absorb_listing(server.session, tools)
