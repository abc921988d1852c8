"""Contract tests: the MCP double against the real infrahub-mcp 1.2.0, and one job through it.

The rest of the suite trusts the MCP double (``doubles.mcp_server``) to answer as the real server
does. These tests check that trust: they install the real server (pinned, with all of its
dependencies, in ``tests/contract/infrahub-mcp-requirements.txt``) into a Python 3.13 virtualenv
of its own, run it in token-passthrough mode, as the compose deployment does, in front of a
small fake Infrahub (``doubles.infrahub_backend``, serving the double's inventory), and ask both
servers the same things over MCP: the listings, the agent prompt, the answers of the read tools
and the errors (a bad or a missing token, an unknown kind, invalid arguments and more). Any
difference fails: the fix belongs in the double (or, if the real server's answer looks wrong, in
the fake Infrahub), never in a looser comparison. Then one agentq job runs through the real
server, and the fake Infrahub must have received exactly the user's token.

The real server needs Python >= 3.13; agentq's interpreter may be older, so it runs from its own
virtualenv, built once and cached, and built in the background while the rest of the suite runs:
these tests are marked ``contract``, which ``tests/infrahub_mcp_server.py`` (the plugin that
builds it) runs after every other test but the ``last`` ones. Without a 3.13 interpreter, or
when the package index cannot be reached to build that virtualenv, the tests are skipped with
the reason (the suite runs with ``-ra``, so the reason is printed); any other failure, and every
mismatch, fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.client import Client as MCPClient
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from agentq.jobs import JobStatus
from agentq.token_proof import PROOF_ARGUMENTS, PROOF_TOOL
from doubles.inventory import build_inventory
from doubles.inventory.traversal import find_paths, find_reachable
from doubles.processes import (
    Service,
    free_port,
    http_ok,
    launch,
    python_module,
    spawn,
    wait_ready,
)
from doubles.toon import toon_encode
from tests.conftest import (
    TOKEN_A,
    TOKEN_B,
    TOKEN_BAD,
    Double,
    Stack,
    Workers,
    own_stack,
    start_mcp_double,
)
from tests.infrahub_mcp_server import SERVER_VERSION, ServerUnavailable, build_for

# The first test waits for the virtualenv if its build (~90 s cold) has not finished yet.
pytestmark = [pytest.mark.contract, pytest.mark.timeout(900)]


# --- the real server's interpreter -----------------------------------------------------------


@pytest.fixture(scope="module")
def server_python(request: pytest.FixtureRequest) -> Path:
    """The interpreter of the real server's virtualenv, which ``tests/infrahub_mcp_server.py``
    has been building since collection ended (waited for here if it is not done); skips the
    module if there can be none here."""
    try:
        return build_for(request.config).python()
    except ServerUnavailable as unavailable:
        pytest.skip(str(unavailable))


# --- the servers -------------------------------------------------------------------------------


@dataclass
class Servers:
    """The fake Infrahub, the real server and the double, each read-write and read-only."""

    backend: Service
    real: dict[bool, Service]
    double: dict[bool, Double]

    def url(self, side: str, read_only: bool = False) -> str:
        base = self.real[read_only].base_url if side == "real" else self.double[read_only].url
        return f"{base}/mcp"

    def backend_requests(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.backend.base_url}/_backend/requests", timeout=5)
        response.raise_for_status()
        records: list[dict[str, Any]] = response.json()
        return records

    def reset_backend(self) -> None:
        httpx.post(f"{self.backend.base_url}/_backend/reset", timeout=5).raise_for_status()


def start_real_server(python: Path, backend_url: str, read_only: bool, log_dir: Path) -> Service:
    """Start the real server without waiting for it (two start at once; each takes seconds).

    Its environment is the documented one for the compose deployment, and nothing else from
    ours: no stray INFRAHUB_* credentials, no ``.env`` file, no proxy for loopback traffic.
    """
    port = free_port()
    dropped = ("INFRAHUB_", "FASTMCP_", "AGENTQ_", "OPENAI_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        env.pop(proxy, None)
    env.update(
        INFRAHUB_ADDRESS=backend_url,
        INFRAHUB_MCP_AUTH_MODE="token-passthrough",
        INFRAHUB_MCP_READ_ONLY="true" if read_only else "false",
        INFRAHUB_MCP_ENV_FILE="",  # never read a .env file
    )
    name = f"infrahub-mcp-{'ro' if read_only else 'rw'}-{port}"
    argv = [str(python), "-m", "infrahub_mcp", "--transport", "streamable-http",
            "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    return launch(name, argv, port, log_dir, env, inherit_env=False, cwd=log_dir)


@pytest.fixture(scope="module")
def servers(server_python: Path, service_dir: Path) -> Iterator[Servers]:
    log_dir = service_dir / "contract"
    log_dir.mkdir(parents=True, exist_ok=True)
    started: list[Service] = []
    try:
        backend_port = free_port()
        backend = spawn(
            f"infrahub-backend-{backend_port}",
            python_module(
                "doubles.infrahub_backend", "--host", "127.0.0.1", "--port", str(backend_port),
                "--token", TOKEN_A, "--token", TOKEN_B,
            ),
            backend_port,
            log_dir,
            ready=http_ok(f"http://127.0.0.1:{backend_port}/health"),
        )  # fmt: skip
        started.append(backend)
        real = {
            ro: start_real_server(server_python, backend.base_url, ro, log_dir)
            for ro in (False, True)
        }
        started += real.values()
        double = {
            ro: start_mcp_double(
                log_dir, "--auth-mode", "passthrough", *(["--read-only"] if ro else []),
                name=f"contract-double-{'ro' if ro else 'rw'}",
            )
            for ro in (False, True)
        }  # fmt: skip
        started += [d.service for d in double.values()]
        for service in real.values():
            wait_ready(service, http_ok(f"{service.base_url}/health"), timeout=120)
        yield Servers(backend=backend, real=real, double=double)
    finally:
        for service in reversed(started):
            service.stop()


# --- talking to them ---------------------------------------------------------------------------

Call = Callable[[MCPClient], Awaitable[Any]]


@dataclass(frozen=True)
class Case:
    """One question for both servers: what to call, with which token, in which mode."""

    call: Call
    token: str | None = TOKEN_A
    read_only: bool = False


@contextlib.asynccontextmanager
async def mcp_session(url: str, token: str | None) -> AsyncIterator[MCPClient]:
    """An MCP client session as agentq's own token check opens one (MCP SDK 2.3)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30), follow_redirects=False)
    async with http, MCPClient(streamable_http_client(url, http_client=http)) as client:
        yield client


async def _answer(client: MCPClient, call: Call) -> Any:
    """What ``call`` returned, as JSON, or ``{"error": [code, message]}``."""
    try:
        result = await call(client)
    except MCPError as error:
        return {"error": [error.error.code, error.error.message]}
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


def ask(url: str, call: Call, token: str | None = TOKEN_A) -> Any:
    async def go() -> Any:
        async with mcp_session(url, token) as client:
            return await _answer(client, call)

    return asyncio.run(go())


def normalized(answer: Any, infrahub: str) -> Any:
    """``answer`` without what must differ between the two servers, and nothing else.

    That is the server's version in ``_meta`` (the double says ``1.2.0-double`` on purpose;
    :func:`test_server_identity` checks both) and the Infrahub address inside texts: each server
    reports its own (``get_session_info``), the double a fixed made-up URL, the real server the
    fake Infrahub's loopback port.
    """
    if isinstance(answer.get("_meta"), dict):
        answer["_meta"].pop("io.modelcontextprotocol/serverInfo", None)
        if not answer["_meta"]:
            del answer["_meta"]
    return json.loads(json.dumps(answer).replace(infrahub, "<infrahub>"))


def ask_all(url: str, cases: dict[str, Case]) -> dict[str, Any]:
    """Every case's answer from the server at ``url``: one session per token and mode, since a
    session costs a round trip or two and the real server is slow to answer a new one."""

    async def go() -> dict[str, Any]:
        async with mcp_session(url, TOKEN_A) as client:
            info = await client.call_tool("get_session_info", {})
        infrahub = (info.structured_content or {})["infrahub_address"]
        answers: dict[str, Any] = {}
        for token in dict.fromkeys(case.token for case in cases.values()):
            async with mcp_session(url, token) as client:
                for name, case in cases.items():
                    if case.token == token:
                        answers[name] = normalized(await _answer(client, case.call), infrahub)
        return answers

    return asyncio.run(go())


def fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


LISTINGS: dict[str, Case] = {
    f"{what}{suffix}": Case(call, read_only=read_only)
    for what, call in (
        ("tools/list", lambda c: c.list_tools()),
        ("prompts/list", lambda c: c.list_prompts()),
        ("resources/list", lambda c: c.list_resources()),
        ("resources/templates/list", lambda c: c.list_resource_templates()),
        # The worker's instructions: nothing in them depends on the Infrahub instance, only the
        # read-only mode changes them, so they must be the same word for word.
        ("prompts/get infrahub_agent", lambda c: c.get_prompt("infrahub_agent", {})),
    )
    for read_only, suffix in ((False, ""), (True, " (read-only)"))
}

READS: dict[str, Case] = {
    "schema catalog": Case(lambda c: c.call_tool("get_schema", {})),
    "schema detail": Case(lambda c: c.call_tool("get_schema", {"kind": "DcimDevice"})),
    "schema detail unexpanded": Case(
        lambda c: c.call_tool("get_schema", {"kind": "LocationSite", "expand": False})
    ),
    "nodes": Case(lambda c: c.call_tool("get_nodes", {"kind": "DcimDevice"})),
    "nodes page": Case(
        lambda c: c.call_tool("get_nodes", {"kind": "DcimDevice", "limit": 5, "offset": 3})
    ),
    "nodes filtered": Case(
        lambda c: c.call_tool(
            "get_nodes", {"kind": "DcimDevice", "filters": {"site__name__value": "atl1"}}
        )
    ),
    "nodes with attributes": Case(
        lambda c: c.call_tool(
            "get_nodes",
            {
                "kind": "InterfacePhysical",
                "filters": {"device__name__value": "atl1-edge1"},
                "include_attributes": True,
            },
        )
    ),
    "nodes with related lists": Case(
        lambda c: c.call_tool("get_nodes", {"kind": "LocationSite", "include_attributes": True})
    ),
    "search": Case(lambda c: c.call_tool("search_nodes", {"query": "spine", "kind": "DcimDevice"})),
    "search without match": Case(
        lambda c: c.call_tool("search_nodes", {"query": "no-such-thing", "kind": "DcimDevice"})
    ),
    "token proof": Case(lambda c: c.call_tool(PROOF_TOOL, dict(PROOF_ARGUMENTS))),
    "graphql": Case(
        lambda c: c.call_tool(
            "query_graphql",
            {
                "query": 'query { DcimDevice(name__value: "atl1-edge1") '
                "{ count edges { node { id name { value } site { node { display_label } } } } } }"
            },
        )
    ),
    "session info": Case(lambda c: c.call_tool("get_session_info", {})),
    "schema resource": Case(lambda c: c.read_resource("infrahub://schema")),
    "kind resource": Case(lambda c: c.read_resource("infrahub://schema/DcimRack")),
}

ERRORS: dict[str, Case] = {
    # A token Infrahub refuses: the tool's first request to Infrahub gets its 401.
    "bad token, query_graphql": Case(
        lambda c: c.call_tool(PROOF_TOOL, dict(PROOF_ARGUMENTS)), token=TOKEN_BAD
    ),
    "bad token, get_nodes": Case(
        lambda c: c.call_tool("get_nodes", {"kind": "DcimDevice"}), token=TOKEN_BAD
    ),
    "bad token, get_schema": Case(lambda c: c.call_tool("get_schema", {}), token=TOKEN_BAD),
    "bad token, schema resource": Case(
        lambda c: c.read_resource("infrahub://schema"), token=TOKEN_BAD
    ),
    "no token": Case(lambda c: c.call_tool("get_schema", {}), token=None),
    "unknown kind, get_nodes": Case(lambda c: c.call_tool("get_nodes", {"kind": "NoSuchKind"})),
    "unknown kind, get_schema": Case(lambda c: c.call_tool("get_schema", {"kind": "NoSuchKind"})),
    "unknown kind, resource": Case(lambda c: c.read_resource("infrahub://schema/NoSuchKind")),
    "unknown filter": Case(
        lambda c: c.call_tool(
            "get_nodes", {"kind": "DcimDevice", "filters": {"colour__value": "red"}}
        )
    ),
    "unknown tool": Case(lambda c: c.call_tool("no_such_tool", {})),
    # Invalid arguments: the real server's texts are pydantic's.
    "missing argument": Case(lambda c: c.call_tool("get_nodes", {})),
    "wrong type": Case(lambda c: c.call_tool("get_nodes", {"kind": 5})),
    "unexpected argument": Case(
        lambda c: c.call_tool("get_nodes", {"kind": "DcimDevice", "colour": "red"})
    ),
    "out of bounds": Case(
        lambda c: c.call_tool("search_nodes", {"query": "a", "kind": "DcimDevice", "limit": 500})
    ),
    # Infrahub refuses the query: the real server quotes infrahub-sdk's GraphQLError.
    "unknown field in query_graphql": Case(
        lambda c: c.call_tool(
            "query_graphql",
            {"query": "query { DcimDevice { edges { node { colour { value } } } } }"},
        )
    ),
    "unknown kind in query_graphql": Case(
        lambda c: c.call_tool("query_graphql", {"query": "query { NoSuchKind { count } }"})
    ),
    "mutation in query_graphql": Case(
        lambda c: c.call_tool("query_graphql", {"query": "mutation { Foo { ok } }"})
    ),
    "write tool in read-only mode": Case(
        lambda c: c.call_tool("node_upsert", {"kind": "LocationSite", "data": {"name": "x"}}),
        read_only=True,
    ),
}


@pytest.fixture(scope="module")
def answers(servers: Servers) -> dict[str, tuple[Any, Any]]:
    """Every case of this module, asked of the double and of the real server: ``(double, real)``."""
    cases = {**LISTINGS, **READS, **ERRORS}
    collected: dict[str, dict[str, Any]] = {"double": {}, "real": {}}
    for side, found in collected.items():
        for read_only in (False, True):
            mode = {name: case for name, case in cases.items() if case.read_only == read_only}
            found.update(ask_all(servers.url(side, read_only), mode))
    return {name: (collected["double"][name], collected["real"][name]) for name in cases}


# --- what they answer --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(LISTINGS))
def test_listed_alike(answers: dict[str, tuple[Any, Any]], name: str) -> None:
    """Tools (names, descriptions, input schemas, annotations, ``_meta``), prompts, resources."""
    double, real = answers[name]
    assert "error" not in real, real
    if name.startswith("tools/list"):  # one tool at a time: a readable failure
        assert [t["name"] for t in double["tools"]] == [t["name"] for t in real["tools"]]
        for mine, theirs in zip(double["tools"], real["tools"], strict=True):
            assert mine == theirs, mine["name"]
    assert double == real


@pytest.mark.parametrize("name", list(READS))
def test_read_answers_alike(answers: dict[str, tuple[Any, Any]], name: str) -> None:
    """The same question about the same data gets the same answer, byte for byte.

    The data are the same by construction (the fake Infrahub serves the double's inventory), so
    a difference is in how one of the servers renders it (or, if the real server's answer looks
    wrong, in the fake Infrahub).
    """
    double, real = answers[name]
    assert "error" not in real, real
    assert double == real


@pytest.mark.parametrize("name", list(ERRORS))
def test_errors_alike(answers: dict[str, tuple[Any, Any]], name: str) -> None:
    """Code and message of each failure: the worker classifies failures by both."""
    double, real = answers[name]
    assert "error" in real, real
    assert double == real


# Edge cases of TOON beyond the inventory's values: quoting, numbers, empty and nested shapes.
TOON_SAMPLES: list[Any] = [
    *["", " padded", "true", "True", "NULL", "12", "-3", "1.5e3", "a,b", "a:b", "a|b", "a\tb"],
    *["a\nb", "a\rb", 'say "hi"', "back\\slash", "[x]", "{x}", "- dash", "-", "#x", "a b"],
    *["caf\u00e9", "\u00fc:x"],
    *[1.0, 0.0, -0.0, 1.5, 1e20, 1e-7, 123456789.123, 1e200, float("nan"), float("inf")],
    *[True, None, 10**20, [], {}, [1, "a", None, True], ["", None]],
    {"k": [], "d": {}, "n": {"m": [1, "a b"]}, "key with space": 1, "k.dot": 2},
    [{"a": 1, "b": 2}, {"b": 3, "a": 4}],
    [{"a": 1, "b": None}, {"a": 2, "b": "x,y"}],
    [{"a": 1}, {"a": [1]}],
    [{"x": {"y": 1}}, {"x": 2}],
    [{"a": 1}, 3, "s", [1, 2]],
    [{}, {}],
    {"a": [{"b": [{"c": 1}]}]},
]


def test_toon_as_the_real_servers_encoder_writes_it(server_python: Path) -> None:
    """``doubles.toon`` against toonify itself, the real server's encoder, run in its virtualenv:
    every schema detail and attribute row of the inventory, a path and a reachability answer,
    and the edge cases above (the read answers only cover the values they ask about)."""
    inventory = build_inventory()
    values: list[Any] = [
        *TOON_SAMPLES,
        *(inventory.schema_detail(k, expand) for k in inventory.schemas for expand in (1, 0)),
        *([inventory.node_dict(n) for n in inventory.of_kind(k)] for k in inventory.schemas),
        find_paths(inventory, "DcimDevice__atl1-edge1", "LocationSite__dfw1"),
        find_reachable(inventory, "LocationSite__atl1", ["InterfacePhysical", "IpamIPAddress"]),
    ]
    script = "import json, sys, toon; print(json.dumps([*map(toon.encode, json.load(sys.stdin))]))"
    done = subprocess.run(
        [str(server_python), "-c", script],
        input=json.dumps(values),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for value, theirs in zip(values, json.loads(done.stdout), strict=True):
        assert toon_encode(value) == theirs, value


def test_server_identity(servers: Servers) -> None:
    for side, version in (("double", f"{SERVER_VERSION}-double"), ("real", SERVER_VERSION)):
        answer = ask(servers.url(side), lambda c: c.call_tool("get_session_info", {}))
        assert answer["_meta"]["io.modelcontextprotocol/serverInfo"] == {
            "name": "Infrahub MCP Server",
            "version": version,
        }


def test_a_bad_token_reaches_infrahub_and_is_refused_there(servers: Servers) -> None:
    """The real server passes the token on unexamined: Infrahub is what refuses it."""
    servers.reset_backend()
    answer = ask(
        servers.url("real"), lambda c: c.call_tool("get_nodes", {"kind": "DcimDevice"}), TOKEN_BAD
    )
    assert "error" in answer
    seen = servers.backend_requests()
    assert [(r["path"], r["token_sha256"], r["auth"], r["status"]) for r in seen] == [
        ("/api/schema", fingerprint(TOKEN_BAD), "bad", 401)
    ]


# --- a job through the real server -------------------------------------------------------------


@pytest.fixture(scope="module")
def real_server_worker(servers: Servers, stack: Stack, workers: Workers) -> Iterator[Stack]:
    """An agentq worker whose MCP server is the real one (Redis db 19, a queue of its own)."""
    side = own_stack(stack, 19, "contract-real-mcp", AGENTQ_MCP_URL=servers.url("real"))
    worker = workers.start(side)
    yield side
    worker.stop()


def test_a_job_succeeds_through_the_real_server(
    servers: Servers, real_server_worker: Stack
) -> None:
    servers.reset_backend()
    client = real_server_worker.client()
    job_id = client.submit("Which devices are in site atl1?", TOKEN_A)
    job = client.wait(job_id, TOKEN_A, timeout=120)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.answer == "[offline demo model] Found 3: atl1-edge1, atl1-leaf1, atl1-spine1"

    trace = client.trace(job_id, TOKEN_A)
    (attempt,) = trace.attempts
    assert [s.kind for s in attempt.steps][:3] == ["token_check", "list_tools", "prompt"]
    # The agent was offered the real server's read tools, built from its listing, and no other.
    offered = set(attempt.steps[1].tools or [])
    assert {"get_nodes", "query_graphql", "get_schema"} <= offered
    assert not offered & {"node_upsert", "node_delete", "mutate_graphql", "propose_changes"}
    (tool_step,) = [s for s in attempt.steps if s.kind == "tool_call"]
    assert tool_step.tool == "get_nodes" and not tool_step.is_error
    assert tool_step.arguments == {"kind": "DcimDevice", "filters": {"site__name__value": "atl1"}}

    # Every request that reached Infrahub carried the user's token, in the header the SDK uses
    # for API tokens, and it was accepted: the token check's read and the tool's reads.
    seen = servers.backend_requests()
    assert {r["path"] for r in seen} >= {"/api/schema", "/graphql/main"}
    assert {(r["credential_header"], r["token_sha256"], r["auth"], r["status"]) for r in seen} == {
        ("x-infrahub-key", fingerprint(TOKEN_A), "ok", 200)
    }
    # ... and nothing agentq keeps about the job holds it.
    for record in (job.model_dump_json(), trace.model_dump_json()):
        for token in (TOKEN_A, TOKEN_B, TOKEN_BAD):
            assert token not in record
