"""The private parts of openai-agents and mcp that ``bench.sdk_seed`` relies on, checked
against the installed packages: a failure here names what changed, so an upgrade is noticed
before a worker quietly sends a ``tools/list`` on every job (see tests/test_caching.py)."""

from __future__ import annotations

import asyncio
import inspect
from importlib.metadata import version
from typing import Any

import anyio
import pytest
from agents.mcp import MCPServerStreamableHttp
from mcp.client.session import ClientSession
from mcp.types import CallToolResult, ListToolsResult, Tool

from bench import sdk_seed as sdk_adapter
from bench.sdk_seed import absorb_listing, cached_tools, give_tools

CHANGED = "{package} changed under bench/sdk_seed.py: {what}. Re-check the adapter against it."

COUNT_SCHEMA = {
    "type": "object",
    "properties": {"count": {"type": "integer"}},
    "required": ["count"],
}
TOOLS = [
    Tool(name="count_devices", input_schema={"type": "object"}, output_schema=COUNT_SCHEMA),
    Tool(name="query_graphql", input_schema={"type": "object"}),
]


def agents_changed(what: str) -> str:
    return CHANGED.format(package="openai-agents", what=what)


def mcp_changed(what: str) -> str:
    return CHANGED.format(package="mcp", what=what)


def names(tools: list[Any] | None) -> list[str]:
    return [tool.name for tool in tools or []]


def unconnected_server() -> MCPServerStreamableHttp:
    """As ``worker.mcp_session`` makes it, but never connected (nothing listens on port 9)."""
    return MCPServerStreamableHttp(params={"url": "http://127.0.0.1:9/mcp"}, cache_tools_list=True)


class ListingSession:
    """Stands in for a connected ClientSession: answers ``tools/list`` with ``tools`` (or
    fails the test if it is asked at all)."""

    def __init__(self, tools: list[Tool] | None) -> None:
        self.tools = tools
        self.listed = 0

    async def list_tools(self, **_kwargs: Any) -> ListToolsResult:
        if self.tools is None:
            raise AssertionError(agents_changed("a seeded server listed tools anyway"))
        self.listed += 1
        return ListToolsResult(tools=self.tools)


@pytest.mark.parametrize("package", sorted(sdk_adapter.CHECKED_VERSIONS))
def test_installed_versions_are_the_checked_ones(package: str) -> None:
    installed = version(package)
    assert installed.startswith(sdk_adapter.CHECKED_VERSIONS[package]), CHANGED.format(
        package=package,
        what=f"{installed} is installed, the adapter was checked against "
        f"{sdk_adapter.CHECKED_VERSIONS[package]}x (then update CHECKED_VERSIONS)",
    )


def test_a_new_server_has_the_attributes_and_trusts_no_list() -> None:
    server = unconnected_server()
    for name in ("_tools_list", "_cache_dirty"):
        assert hasattr(server, name), agents_changed(f"MCPServerStreamableHttp has no {name}")
    assert server._tools_list is None, agents_changed("_tools_list does not start as None")
    assert server._cache_dirty is True, agents_changed("_cache_dirty does not start as True")
    assert cached_tools(server) is None


def test_a_seeded_server_lists_tools_without_asking_its_session() -> None:
    server = unconnected_server()
    give_tools(server, TOOLS)
    server.session = ListingSession(None)  # type: ignore[assignment]
    listed = asyncio.run(server.list_tools())
    assert names(listed) == names(TOOLS), agents_changed("list_tools ignores _tools_list")
    assert names(cached_tools(server)) == names(TOOLS)


def test_a_fetched_list_is_where_the_adapter_reads_it() -> None:
    server = unconnected_server()
    session = ListingSession(TOOLS)
    server.session = session  # type: ignore[assignment]
    asyncio.run(server.list_tools())
    assert session.listed == 1
    assert names(cached_tools(server)) == names(TOOLS), agents_changed(
        "list_tools no longer keeps its listing in _tools_list with _cache_dirty False"
    )
    server.invalidate_tools_cache()
    assert cached_tools(server) is None, agents_changed(
        "invalidate_tools_cache no longer sets _cache_dirty"
    )


def unconnected_session() -> ClientSession:
    _to_session, from_client = anyio.create_memory_object_stream[Any](1)
    to_server, _from_session = anyio.create_memory_object_stream[Any](1)
    return ClientSession(from_client, to_server)


def test_absorb_tool_listing_takes_a_result_and_complete() -> None:
    method = getattr(ClientSession, "_absorb_tool_listing", None)
    assert method is not None, mcp_changed("ClientSession has no _absorb_tool_listing")
    parameters = inspect.signature(method).parameters
    assert list(parameters) == ["self", "result", "complete"], mcp_changed(
        f"_absorb_tool_listing takes {list(parameters)}"
    )
    assert parameters["complete"].kind is inspect.Parameter.KEYWORD_ONLY, mcp_changed(
        "_absorb_tool_listing's complete is no longer keyword-only"
    )


def test_an_absorbed_listing_spares_the_session_its_own_tools_list() -> None:
    session = unconnected_session()

    async def no_listing(**_kwargs: Any) -> ListToolsResult:
        raise AssertionError(mcp_changed("the session listed tools after absorbing a listing"))

    session.list_tools = no_listing  # type: ignore[method-assign]
    assert absorb_listing(session, TOOLS), mcp_changed("_absorb_tool_listing failed")

    async def validate(structured: dict[str, Any]) -> None:
        result = CallToolResult(content=[], structured_content=structured)
        await session.validate_tool_result("count_devices", result)

    asyncio.run(validate({"count": 3}))
    # The absorbed output schema is the one checked: a result that breaks it is refused.
    with pytest.raises(RuntimeError, match="Invalid structured content"):
        asyncio.run(validate({"count": "three"}))


def test_absorb_listing_without_the_method_costs_nothing_but_a_listing() -> None:
    assert absorb_listing(None, TOOLS) is False
    assert absorb_listing(object(), TOOLS) is False  # type: ignore[arg-type]
