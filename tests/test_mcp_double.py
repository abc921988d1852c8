"""The Infrahub MCP double, through a real MCP client over real HTTP.

The double is a real process on a free loopback port. The client is the one the worker uses,
the Agents SDK's ``MCPServerStreamableHttp`` (MCP SDK 2.3 underneath), plus raw HTTP where the
wire itself is the point. Besides checking the double, these tests pin down what that client
does for each way the server can fail, because the worker classifies failures by it
(``MCPError`` is ``mcp.shared.exceptions.MCPError``):

- tool error (1.2.0): ``call_tool`` raises ``MCPError``, code -32603, message
  ``Internal error: <what>\\n\\nRemediation: <hint>``;
- tool error with ``--error-style isError`` (1.1.x): ``call_tool`` returns a ``CallToolResult``
  with ``is_error=True`` whose text is the message without ``Internal error: ``;
- HTTP 401 from the gateway at connect: ``connect`` raises a (nested) ``ExceptionGroup`` of
  ``MCPError(-32603, 'Server returned an error response')``: a 4xx at the handshake is not
  turned into a ``UserError`` (only a 5xx is), and the discover probe falls back to ``initialize``
  before giving up;
- HTTP 503 on ``tools/call``: ``call_tool`` raises
  ``MCPError(-32603, 'Server returned an error response')``; at connect, ``connect`` raises
  ``agents.exceptions.UserError`` "Failed to connect to MCP server '...': HTTP error 503
  (Service Unavailable)";
- connection dropped on ``tools/call``: ``call_tool`` raises ``MCPError(-32000, 'Connection
  closed')`` (and the SDK logs "Error cleaning up MCP server" on exit); at connect: ``UserError``
  "Failed to connect to MCP server '...': Request failed.";
- server hangs: ``call_tool`` raises ``MCPError(-32001, "Request 'tools/call' timed out")`` after
  ``client_session_timeout_seconds``;
- rate limited: ``call_tool`` raises ``MCPError(-32000, 'Global rate limit exceeded')``.

The codes collide (-32000 is both "connection closed" and the rate limit; -32001 both a timeout
and "not found"/"authentication required"; -32603 both a tool error and any HTTP error status):
classify by code *and* message.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from agents.exceptions import UserError
from agents.mcp import MCPServerStreamableHttp
from mcp.shared.exceptions import MCPError

from doubles.processes import Service, free_port, http_ok, python_module, spawn, wait_until

TOKEN = "ihtoken-double-test-3f9a1c77e2"
WRONG_TOKEN = "ihtoken-double-wrong-0000"
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
TOOLS_JSON = Path(__file__).resolve().parents[1] / "doubles" / "data"
WRITE_TOOLS = {
    "node_upsert",
    "node_delete",
    "propose_changes",
    "mutate_graphql",
    "reset_session_branch",
}
MODERN = "2026-07-28"


def reference_tools() -> list[dict[str, Any]]:
    """The real server's tools/list answer (the shared reference copy, else the packaged one)."""
    path = REFERENCE / "infrahub-mcp-1.2.0-tools.json"
    if not path.exists():
        path = TOOLS_JSON / "infrahub-mcp-1.2.0-tools.json"
    tools: list[dict[str, Any]] = json.loads(path.read_text())
    return tools


def start_double(log_dir: Path, *extra: str) -> Service:
    port = free_port()
    argv = python_module(
        "doubles.mcp_server", "--host", "127.0.0.1", "--port", str(port), "--token", TOKEN, *extra
    )
    return spawn(
        f"mcp-double-test-{port}",
        argv,
        port,
        log_dir,
        ready=http_ok(f"http://127.0.0.1:{port}/health"),
    )


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mcp-double")


@pytest.fixture(scope="module")
def double(log_dir: Path) -> Iterator[Service]:
    """Gateway auth (the default), SSE replies, read-write."""
    service = start_double(log_dir)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def passthrough_double(log_dir: Path) -> Iterator[Service]:
    """Like the real server with token passthrough and read-only mode, JSON replies."""
    service = start_double(log_dir, "--auth-mode", "passthrough", "--read-only", "--json-response")
    yield service
    service.stop()


@pytest.fixture(autouse=True)
def fresh(double: Service) -> None:
    reset(double)


def reset(service: Service, **knobs: Any) -> None:
    httpx.post(f"{service.base_url}/_double/reset", json=knobs, timeout=5).raise_for_status()


def configure(service: Service, **knobs: Any) -> dict[str, Any]:
    response = httpx.post(f"{service.base_url}/_double/config", json=knobs, timeout=5)
    response.raise_for_status()
    config: dict[str, Any] = response.json()
    return config


def calls(service: Service) -> list[dict[str, Any]]:
    response = httpx.get(f"{service.base_url}/_double/calls", timeout=5)
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()
    return result


def tool_calls(service: Service) -> list[dict[str, Any]]:
    return [c for c in calls(service) if c["method"] == "tools/call"]


def client(
    service: Service, token: str | None = TOKEN, session_timeout: float = 10, **options: Any
) -> MCPServerStreamableHttp:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return MCPServerStreamableHttp(
        params={"url": f"{service.base_url}/mcp", "headers": headers, "timeout": 10},
        client_session_timeout_seconds=session_timeout,
        **options,
    )


def with_client(
    service: Service, body: Callable[[MCPServerStreamableHttp], Awaitable[Any]], **options: Any
) -> Any:
    """Connect, run ``body`` with the connected client, disconnect; returns what ``body`` did."""

    async def go() -> Any:
        server = client(service, **options)
        async with server:
            return await body(server)

    return asyncio.run(go())


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


def mcp_error(call: Callable[[MCPServerStreamableHttp], Awaitable[Any]]) -> Any:
    """A body for ``with_client`` that returns the MCPError ``call`` raises (fails otherwise)."""

    async def body(server: MCPServerStreamableHttp) -> MCPError:
        with pytest.raises(MCPError) as caught:
            await call(server)
        return caught.value

    return body


def post_modern(
    service: Service,
    method: str,
    params: dict[str, Any],
    token: str | None = TOKEN,
    http: httpx.Client | None = None,
) -> httpx.Response:
    """One 2026-07-28 request, as the MCP SDK 2.3 client sends it (no session)."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    headers = {
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": MODERN,
        "mcp-method": method,
    }
    if token:
        headers["authorization"] = f"Bearer {token}"
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": meta}}
    if http is None:
        return httpx.post(f"{service.base_url}/mcp", json=body, headers=headers, timeout=10)
    return http.post(f"{service.base_url}/mcp", json=body, headers=headers)


class LegacySession:
    """A handshake-era client (``initialize`` + ``mcp-session-id``), speaking raw HTTP."""

    def __init__(self, service: Service, token: str | None = TOKEN) -> None:
        self.url = f"{service.base_url}/mcp"
        self.headers = {"accept": "application/json, text/event-stream"}
        if token:
            self.headers["authorization"] = f"Bearer {token}"
        self.http = httpx.Client(timeout=10)
        self.next_id = 1
        self.init = self.post("initialize", {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "legacy-test", "version": "0"},
        })  # fmt: skip
        self.headers["mcp-session-id"] = self.init.headers["mcp-session-id"]
        self.headers["mcp-protocol-version"] = "2025-11-25"
        notified = self.http.post(
            self.url,
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
            headers=self.headers,
        )
        assert notified.status_code == 202

    def post(self, method: str, params: dict[str, Any]) -> httpx.Response:
        body = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        self.next_id += 1
        return self.http.post(self.url, json=body, headers=self.headers)

    @staticmethod
    def messages(response: httpx.Response) -> list[dict[str, Any]]:
        if response.headers["content-type"].startswith("application/json"):
            return [response.json()]
        lines = response.text.splitlines()
        return [json.loads(line[5:]) for line in lines if line.startswith("data:")]

    def close(self) -> None:
        self.http.delete(self.url, headers=self.headers)
        self.http.close()


# --- what the client sees ----------------------------------------------------------------------


def test_tools_list_is_the_real_servers(double: Service) -> None:
    reference = reference_tools()
    tools = with_client(double, lambda s: s.list_tools())
    assert [t.name for t in tools] == [t["name"] for t in reference]
    assert [t.input_schema for t in tools] == [t["inputSchema"] for t in reference]
    # On the wire, every field is the real server's, annotations and _meta included.
    wire = post_modern(double, "tools/list", {})
    assert wire.status_code == 200
    assert wire.json()["result"]["tools"] == reference


def test_handshake_clients_get_a_session_and_sse(double: Service) -> None:
    session = LegacySession(double)
    try:
        assert session.init.headers["content-type"].startswith("text/event-stream")
        (init,) = session.messages(session.init)
        assert init["result"]["serverInfo"] == {
            "name": "Infrahub MCP Server",
            "version": "1.2.0-double",
        }
        reply = session.post("tools/call", {"name": "get_nodes", "arguments": {"kind": "Nope"}})
        # 1.2.0: a tool error is a JSON-RPC error inside an HTTP 200 SSE reply.
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        (message,) = session.messages(reply)
        assert message["error"]["code"] == -32603
        assert message["error"]["message"].startswith(
            "Internal error: Schema not found for kind: Nope."
        )
        assert "\n\nRemediation: Valid kinds: " in message["error"]["message"]
    finally:
        session.close()
    seen = calls(double)
    assert [c["method"] for c in seen] == [
        "initialize", "notifications/initialized", "tools/call", "DELETE",
    ]  # fmt: skip
    assert len({c["session"] for c in seen}) == 1 and seen[0]["session"]


def test_get_nodes_with_a_relationship_filter(double: Service) -> None:
    async def body(server: MCPServerStreamableHttp) -> Any:
        return await server.call_tool(
            "get_nodes", {"kind": "DcimDevice", "filters": {"site__name__value": "atl1"}}
        )

    result = with_client(double, body)
    answer = json.loads(text_of(result))
    assert answer == {
        "nodes": ["atl1-edge1", "atl1-leaf1", "atl1-spine1"],
        "count": 3,
        "total_count": 3,
        "has_more": False,
        "offset": 0,
        "limit": 50,
    }
    assert result.structured_content == answer
    (seen,) = tool_calls(double)
    assert seen["tool"] == "get_nodes" and seen["auth"] == "ok" and seen["outcome"] == "ok"
    assert seen["arguments"] == {"kind": "DcimDevice", "filters": {"site__name__value": "atl1"}}


def test_schema_catalog_tool_and_resource(double: Service) -> None:
    async def body(server: MCPServerStreamableHttp) -> tuple[Any, Any, Any]:
        catalog = await server.call_tool("get_schema", {})
        resource = await server.read_resource("infrahub://schema")
        detail = await server.read_resource("infrahub://schema/DcimDevice")
        return catalog, resource, detail

    catalog, resource, detail = with_client(double, body)
    kinds = json.loads(text_of(catalog))
    assert json.loads(resource.contents[0].text) == kinds
    assert resource.contents[0].mime_type == "application/json"
    dcim = sorted(k for k in kinds if k.startswith("Dcim"))
    assert dcim == ["DcimCable", "DcimDevice", "DcimManufacturer", "DcimPlatform", "DcimRack"]
    for kind in ("LocationSite", "InterfacePhysical", "IpamPrefix", "IpamIPAddress"):
        assert kind in kinds
    # Schema detail is TOON, with the filter keys get_nodes accepts.
    assert "site__name__value,String" in detail.contents[0].text


def test_infrahub_agent_prompt_read_write(double: Service) -> None:
    prompt = with_client(double, lambda s: s.get_prompt("infrahub_agent", {}))
    text = prompt.messages[0].content.text
    assert prompt.messages[0].role == "user"
    assert text.count("\n\n") >= 3 and "get_nodes" in text and "infrahub://schema" in text
    assert "Read-only mode" not in text and "node_upsert" in text


def test_invalid_arguments_are_invalid_params(double: Service) -> None:
    error = with_client(double, mcp_error(lambda s: s.call_tool("get_nodes", {"kind": 5})))
    assert error.code == -32602
    assert error.message.startswith("Invalid params: 1 validation error for call[get_nodes]")
    missing = with_client(double, mcp_error(lambda s: s.call_tool("get_nodes", {})))
    assert missing.code == -32602 and "kind\n  Missing required argument" in missing.message


def test_unknown_tool(double: Service) -> None:
    error = with_client(double, mcp_error(lambda s: s.call_tool("no_such_tool", {})))
    assert (error.code, error.message) == (-32001, "Not found: Unknown tool: 'no_such_tool'")


def test_tool_error_styles(double: Service) -> None:
    error = with_client(double, mcp_error(lambda s: s.call_tool("get_schema", {"kind": "Nope"})))
    assert error.code == -32603
    assert error.message.startswith(
        "Internal error: Schema not found for kind: Nope.\n\nRemediation:"
    )
    configure(double, error_style="isError")  # like 1.1.x
    result = with_client(double, lambda s: s.call_tool("get_schema", {"kind": "Nope"}))
    assert result.is_error is True
    assert text_of(result).startswith("Schema not found for kind: Nope.\n\nRemediation:")


def test_graphql_and_traversal(double: Service) -> None:
    query = 'query { DcimDevice(role__value: "edge") { count edges { node { name { value } } } } }'

    async def body(server: MCPServerStreamableHttp) -> tuple[Any, Any, MCPError]:
        answer = await server.call_tool("query_graphql", {"query": query})
        paths = await server.call_tool(
            "find_paths",
            {"source": "DcimDevice__atl1-edge1", "destination": "LocationSite__atl1"},
        )
        with pytest.raises(MCPError) as caught:
            await server.call_tool("query_graphql", {"query": "mutation { Foo { ok } }"})
        return answer, paths, caught.value

    answer, paths, error = with_client(double, body)
    data = json.loads(text_of(answer))["DcimDevice"]
    assert data["count"] == 4
    names = [e["node"]["name"]["value"] for e in data["edges"]]
    assert names == ["atl1-edge1", "dfw1-edge1", "jfk1-edge1", "ord1-edge1"]
    assert "count: 1" in text_of(paths) and "relationship: site__device" in text_of(paths)
    assert error.code == -32603 and "Use mutate_graphql instead" in error.message


def test_writes_change_the_data_until_reset(double: Service) -> None:
    async def body(server: MCPServerStreamableHttp) -> tuple[Any, Any, Any]:
        created = await server.call_tool(
            "node_upsert", {"kind": "LocationSite", "data": {"name": "sea1", "city": "Seattle"}}
        )
        sites = await server.call_tool("get_nodes", {"kind": "LocationSite"})
        proposed = await server.call_tool("propose_changes", {"title": "add sea1"})
        return created, sites, proposed

    created, sites, proposed = with_client(double, body)
    branch = json.loads(text_of(created))["branch"]
    assert branch.startswith("mcp/session-")
    assert "sea1" in json.loads(text_of(sites))["nodes"]
    assert json.loads(text_of(proposed))["source_branch"] == branch
    reset(double)
    sites = with_client(double, lambda s: s.call_tool("get_nodes", {"kind": "LocationSite"}))
    assert json.loads(text_of(sites))["nodes"] == ["atl1", "dfw1", "jfk1", "ord1"]


def test_a_body_sent_in_chunks_reaches_the_server_whole(double: Service) -> None:
    """The recording gate reads the body to learn the method, and must pass all of it on."""
    message = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {
            "name": "search_nodes",
            "arguments": {"query": "edge", "kind": "DcimDevice", "limit": 2},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "0"},
                "io.modelcontextprotocol/clientCapabilities": {},
                "padding": "x" * 300_000,
            },
        },
    }
    raw = json.dumps(message).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(raw), 65_536):
            yield raw[start : start + 65_536]

    response = httpx.post(
        f"{double.base_url}/mcp",
        content=chunks(),  # no length: sent with chunked transfer encoding
        headers={
            "authorization": f"Bearer {TOKEN}",
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": MODERN,
            "mcp-method": "tools/call",
            "mcp-name": "search_nodes",
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["id"] == 7
    assert json.loads(reply["result"]["content"][0]["text"]) == ["atl1-edge1", "dfw1-edge1"]
    (seen,) = tool_calls(double)
    assert seen["arguments"] == {"query": "edge", "kind": "DcimDevice", "limit": 2}


# --- auth ----------------------------------------------------------------------------------------


def test_gateway_refuses_a_wrong_token_with_http_401(double: Service) -> None:
    raw = post_modern(double, "tools/list", {}, token=WRONG_TOKEN)
    assert raw.status_code == 401 and raw.json() == {"error": "unauthorized"}
    assert post_modern(double, "tools/list", {}, token=None).status_code == 401

    async def connect() -> BaseException:
        server = client(double, token=WRONG_TOKEN)
        try:
            with pytest.raises(BaseException) as caught:
                await server.connect()
        finally:
            await server.cleanup()
        return caught.value

    # The Agents SDK raises an ExceptionGroup (nested) around
    # MCPError(-32603, 'Server returned an error response'): a 4xx at the handshake is not mapped
    # to UserError (only 5xx are), and the discover probe falls back to initialize first.
    error = asyncio.run(connect())
    assert isinstance(error, BaseExceptionGroup)
    leaves = _leaves(error)
    assert all(isinstance(e, MCPError) for e in leaves)
    assert {(e.code, e.message) for e in leaves} == {(-32603, "Server returned an error response")}
    seen = calls(double)
    assert [c["auth"] for c in seen[:2]] == ["bad", "missing"]  # the two raw requests
    handshake = seen[2:]
    assert [c["method"] for c in handshake] == ["server/discover", "initialize"]
    assert {(c["auth"], c["http_status"], c["outcome"]) for c in handshake} == {
        ("bad", 401, "error")
    }


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for sub in error.exceptions for leaf in _leaves(sub)]
    return [error]


def test_passthrough_fails_the_tool_call_like_infrahub(passthrough_double: Service) -> None:
    reset(passthrough_double)

    async def body(server: MCPServerStreamableHttp) -> tuple[list[Any], Any, MCPError]:
        tools = await server.list_tools()
        prompt = await server.get_prompt("infrahub_agent", {})
        with pytest.raises(MCPError) as caught:
            await server.call_tool("get_schema", {})
        return tools, prompt, caught.value

    # The handshake, tools/list and prompts work with any token; the tool call reaches
    # "Infrahub", which refuses the token.
    tools, prompt, error = with_client(passthrough_double, body, token=WRONG_TOKEN)
    assert tools and prompt.messages
    assert error.code == -32603
    assert error.message.startswith(
        "Internal error: Error calling tool 'get_schema': Client error '401 Unauthorized' for url "
        "'http://infrahub.double/api/schema?branch=main'"
    )
    assert [c["auth"] for c in tool_calls(passthrough_double)] == ["bad"]

    no_token = with_client(
        passthrough_double, mcp_error(lambda s: s.call_tool("get_schema", {})), token=None
    )
    assert (no_token.code, no_token.message) == (
        -32001,
        "Authentication required: no Infrahub API token in request header.",
    )
    ok = with_client(passthrough_double, lambda s: s.call_tool("get_schema", {}))
    assert "DcimDevice" in text_of(ok)


def test_read_only_hides_and_refuses_write_tools(passthrough_double: Service) -> None:
    reset(passthrough_double)
    tools = with_client(passthrough_double, lambda s: s.list_tools())
    names = {t.name for t in tools}
    assert names == {t["name"] for t in reference_tools()} - WRITE_TOOLS
    error = with_client(
        passthrough_double,
        mcp_error(lambda s: s.call_tool("node_upsert", {"kind": "LocationSite", "data": {}})),
    )
    assert error.code == -32601
    assert error.message == (
        "Tool 'node_upsert' is not available in read-only mode. "
        "Write operations are disabled on this server."
    )
    prompt = with_client(passthrough_double, lambda s: s.get_prompt("infrahub_agent", {}))
    text = prompt.messages[0].content.text
    assert "read-only" in text and "Write operations" in text and "are disabled" in text
    assert "node_upsert" not in text


def test_json_response_mode_answers_handshake_clients_in_json(passthrough_double: Service) -> None:
    session = LegacySession(passthrough_double)
    try:
        assert session.init.headers["content-type"].startswith("application/json")
        reply = session.post("tools/call", {"name": "get_session_info", "arguments": {}})
        (message,) = session.messages(reply)
        info = message["result"]["structuredContent"]
        assert info == {
            "session_branch": None,
            "has_session_branch": False,
            "infrahub_address": "http://infrahub.double",
        }
        (init,) = session.messages(session.init)
        assert init["result"]["serverInfo"]["version"] == "1.2.0-double"
    finally:
        session.close()


def test_tokens_never_reach_records_config_or_log(double: Service) -> None:
    with_client(
        double, lambda s: s.call_tool("search_nodes", {"query": TOKEN, "kind": "DcimDevice"})
    )
    post_modern(double, "tools/list", {}, token=WRONG_TOKEN)
    recorded = json.dumps(calls(double))
    config = httpx.get(f"{double.base_url}/_double/config", timeout=5).text
    for secret in (TOKEN, WRONG_TOKEN):
        assert secret not in recorded and secret not in config and secret not in double.log_text()
    assert json.loads(config)["tokens_configured"] == 1


# --- faults --------------------------------------------------------------------------------------


def test_http_503_twice_then_success(double: Service) -> None:
    configure(double, fault="http_503", fault_methods=["tools/call"], fault_first_n=2)
    # The Agents SDK's own retries (2 here) ride out the two failures.
    result = with_client(
        double,
        lambda s: s.call_tool("get_schema", {}),
        max_retry_attempts=2,
        retry_backoff_seconds_base=0.01,
    )
    assert "DcimDevice" in text_of(result)
    seen = tool_calls(double)
    assert [(c["fault"], c["http_status"], c["outcome"]) for c in seen] == [
        ("http_503", 503, "error"),
        ("http_503", 503, "error"),
        (None, 200, "ok"),
    ]
    stats = httpx.get(f"{double.base_url}/_double/stats", timeout=5).json()
    assert stats["by_fault"] == {"http_503": 2} and stats["by_tool"] == {"get_schema": 3}
    assert configure(double)["fault_first_n"] == 0


def test_http_503_without_retries(double: Service) -> None:
    configure(double, fault="http_503", fault_methods=["tools/call"])
    error = with_client(double, mcp_error(lambda s: s.call_tool("get_schema", {})))
    assert (error.code, error.message) == (-32603, "Server returned an error response")


def test_http_503_at_connect_is_a_user_error(double: Service) -> None:
    configure(double, fault="http_503", fault_methods=["server/discover"])

    async def connect() -> None:
        server = client(double)
        try:
            await server.connect()
        finally:
            await server.cleanup()

    with pytest.raises(UserError, match=r"HTTP error 503 \(Service Unavailable\)"):
        asyncio.run(connect())


def test_http_429_carries_retry_after(double: Service) -> None:
    configure(double, fault="http_429", retry_after_s=7)
    response = post_modern(double, "tools/list", {})
    assert response.status_code == 429 and response.headers["retry-after"] == "7"


def test_jsonrpc_rate_limit(double: Service) -> None:
    configure(double, fault="jsonrpc_rate_limit", fault_methods=["tools/call"])
    error = with_client(double, mcp_error(lambda s: s.call_tool("get_schema", {})))
    assert (error.code, error.message) == (-32000, "Global rate limit exceeded")


def test_global_rate_limit_counts_every_message(double: Service) -> None:
    reset(double, rate_limit_rps=0.01, rate_limit_burst=3)

    async def body(server: MCPServerStreamableHttp) -> list[Any]:
        outcomes: list[Any] = []
        for _ in range(3):
            try:
                outcomes.append(await server.call_tool("get_schema", {}))
            except MCPError as error:
                outcomes.append(error)
        return outcomes

    first, *_, last = with_client(double, body)
    assert not isinstance(first, MCPError)
    assert isinstance(last, MCPError)
    assert (last.code, last.message) == (-32000, "Global rate limit exceeded")
    # Every MCP message took a token (the client's own server/discover and tools/list too):
    # exactly the first three got through.
    codes = [c["error_code"] for c in calls(double)]
    assert codes[:3] == [None, None, None] and set(codes[3:]) == {-32000}


def test_dropped_connection(double: Service) -> None:
    configure(double, fault="drop", fault_methods=["tools/call"], fault_first_n=1)
    error = with_client(double, mcp_error(lambda s: s.call_tool("get_schema", {})))
    assert (error.code, error.message) == (-32000, "Connection closed")
    (seen,) = tool_calls(double)
    assert seen["fault"] == "drop" and seen["outcome"] == "error" and seen["http_status"] is None
    # The double itself is fine: the next client gets answers.
    assert "DcimDevice" in text_of(with_client(double, lambda s: s.call_tool("get_schema", {})))


def test_hang_times_out_in_the_client(double: Service) -> None:
    configure(double, fault="hang", fault_methods=["tools/call"])
    started = time.monotonic()
    error = with_client(
        double, mcp_error(lambda s: s.call_tool("get_schema", {})), session_timeout=1
    )
    assert time.monotonic() - started >= 1
    assert (error.code, error.message) == (-32001, "Request 'tools/call' timed out")
    # The client hung up; the double noticed and recorded the request as failed.
    wait_until(
        lambda: tool_calls(double)[0]["outcome"] == "error", timeout=10, what="the hang to end"
    )
    assert tool_calls(double)[0]["fault"] == "hang"


def test_tool_error_fault(double: Service) -> None:
    configure(double, fault="tool_error")  # applies to tools/call only
    error = with_client(double, mcp_error(lambda s: s.call_tool("get_schema", {})))
    assert error.code == -32603 and "injected fault" in error.message
    assert [c["fault"] for c in calls(double) if c["fault"]] == ["tool_error"]


def test_latency_knobs_add_delay(double: Service) -> None:
    configure(double, latency_ms=150, tool_latency_ms=200)

    async def body(server: MCPServerStreamableHttp) -> float:
        started = time.monotonic()
        await server.call_tool("get_session_info", {})
        return time.monotonic() - started

    assert with_client(double, body) >= 0.35


def test_fault_rate_is_reproducible_with_a_seed(double: Service) -> None:
    def failures(http: httpx.Client) -> list[bool]:
        reset(double, fault="http_503", fault_rate=0.5, seed=42)
        return [
            post_modern(double, "tools/list", {}, http=http).status_code == 503 for _ in range(12)
        ]

    with httpx.Client(timeout=10) as http:
        first = failures(http)
        assert first == failures(http)
    assert 0 < sum(first) < len(first)


def test_admin_endpoints_refuse_bad_knobs(double: Service) -> None:
    for knobs in ({"fault": "explode"}, {"fault_rate": 2}, {"tokens": ["x"]}, {"nope": 1}):
        response = httpx.post(f"{double.base_url}/_double/config", json=knobs, timeout=5)
        assert response.status_code == 400, knobs
        assert "error" in response.json()
    assert configure(double)["fault"] == "none"


# --- changing the inventory between runs -------------------------------------------------------

PRISTINE_DEVICES = [
    f"{site}-{role}1"
    for site in ("atl1", "dfw1", "jfk1", "ord1")
    for role in ("edge", "leaf", "spine")
]


def change_inventory(service: Service, body: Any) -> httpx.Response:
    return httpx.post(f"{service.base_url}/_double/inventory", json=body, timeout=5)


def devices(service: Service) -> list[str]:
    """The device names a real MCP client gets from get_nodes."""
    result = with_client(service, lambda s: s.call_tool("get_nodes", {"kind": "DcimDevice"}))
    names: list[str] = json.loads(text_of(result))["nodes"]
    return names


def device_rows(service: Service) -> dict[str, dict[str, Any]]:
    """Every device's id, role, site and rack, by name."""
    query = (
        "query { DcimDevice { edges { node { id name { value } role { value } "
        "site { node { name { value } } } rack { node { name { value } } } } } } }"
    )
    result = with_client(service, lambda s: s.call_tool("query_graphql", {"query": query}))
    edges = json.loads(text_of(result))["DcimDevice"]["edges"]
    return {e["node"]["name"]["value"]: e["node"] for e in edges}


def test_inventory_changes_show_in_get_nodes_until_reset(double: Service) -> None:
    before = device_rows(double)
    assert devices(double) == PRISTINE_DEVICES
    response = change_inventory(
        double,
        {
            "changes": [
                {"op": "add", "kind": "DcimDevice", "name": "atl1-new1", "like": "atl1-leaf1"},
                {"op": "remove", "kind": "DcimDevice", "name": "dfw1-leaf1"},
                {"op": "rename", "kind": "DcimDevice", "name": "jfk1-edge1", "to": "jfk1-edge9"},
            ]
        },
    )
    assert response.status_code == 200
    assert response.json() == {
        "added": ["atl1-new1"],
        "removed": ["dfw1-leaf1"],
        "renamed": [["jfk1-edge1", "jfk1-edge9"]],
    }
    expected = sorted({*PRISTINE_DEVICES, "atl1-new1", "jfk1-edge9"} - {"dfw1-leaf1", "jfk1-edge1"})
    assert devices(double) == expected
    after = device_rows(double)
    # Renamed: the same node (its id) under the new name; added: a copy of its model, new id.
    assert after["jfk1-edge9"]["id"] == before["jfk1-edge1"]["id"]
    new, model = after["atl1-new1"], before["atl1-leaf1"]
    assert new["id"] != model["id"]
    assert [new[k] for k in ("role", "site", "rack")] == [
        model[k] for k in ("role", "site", "rack")
    ]
    reset(double)
    assert devices(double) == PRISTINE_DEVICES


def test_a_name_freed_by_a_rename_can_be_added_again(double: Service) -> None:
    """The renamed node keeps the id derived from its old name; the new node must not take it."""
    changes = [
        {"op": "rename", "kind": "DcimDevice", "name": "ord1-leaf1", "to": "ord1-leaf9"},
        {"op": "add", "kind": "DcimDevice", "name": "ord1-leaf1", "like": "ord1-spine1"},
    ]
    assert change_inventory(double, {"changes": changes}).status_code == 200
    rows = device_rows(double)
    assert rows["ord1-leaf1"]["id"] != rows["ord1-leaf9"]["id"]
    assert len(devices(double)) == len(PRISTINE_DEVICES) + 1


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"op": "move", "kind": "DcimDevice", "name": "atl1-leaf1"}, "unknown op 'move'"),
        ({"op": "remove", "kind": "DcimWidget", "name": "x"}, "DcimWidget"),
        ({"op": "remove", "kind": "DcimDevice", "name": "nope1"}, "no DcimDevice named 'nope1'"),
        (
            {"op": "rename", "kind": "DcimDevice", "name": "atl1-leaf1", "to": "atl1-spine1"},
            "a DcimDevice named 'atl1-spine1' already exists",
        ),
        (
            {"op": "add", "kind": "DcimDevice", "name": "atl1-leaf1", "like": "atl1-spine1"},
            "already exists",
        ),
        ({"op": "add", "kind": "DcimDevice", "name": "atl1-new1"}, "add needs 'like'"),
        ("remove atl1-leaf1", "a change must be an object"),
    ],
)
def test_a_bad_change_is_refused_and_changes_nothing(
    double: Service, change: Any, error: str
) -> None:
    good = {"op": "remove", "kind": "DcimDevice", "name": "ord1-leaf1"}
    response = change_inventory(double, {"changes": [good, change]})
    assert response.status_code == 400
    message = response.json()["error"]
    assert message.startswith("changes[1]") and error in message and "\n" not in message
    assert devices(double) == PRISTINE_DEVICES  # the good change before it was not kept


def test_an_inventory_body_that_is_not_changes_is_refused(double: Service) -> None:
    url = f"{double.base_url}/_double/inventory"
    not_json = httpx.post(url, content=b"{not json", timeout=5)
    assert not_json.status_code == 400 and "error" in not_json.json()
    no_list = change_inventory(double, {"change": []})
    assert no_list.status_code == 400 and "changes" in no_list.json()["error"]
    assert devices(double) == PRISTINE_DEVICES
