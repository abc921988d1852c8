"""A tool call is sent twice only when that is harmless: a read tool, or a request that provably
never reached the server. Real HTTP to the MCP double, with its faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx2
import pytest

from doubles.processes import free_port
from tests.conftest import TOKEN_A, Double
from worker.mcp_transport import RetryingTransport


@pytest.fixture
def writable_mcp(mcp_double: Double) -> Iterator[Double]:
    """The session's MCP double (read-write); each test sets its faults with a reset, and it
    is reset again afterwards for the session's other tests."""
    yield mcp_double
    mcp_double.reset()


def send_tool_call(url: str, tool: str, resendable: bool) -> tuple[int | str, list[str]]:
    """POST one ``tools/call`` through the transport: (status or exception name, failures noted)."""
    notes: list[str] = []

    async def go() -> int | str:
        transport = RetryingTransport(
            httpx2.AsyncHTTPTransport(),
            3,
            lambda method, error, retried: notes.append(f"{method} {error} {retried}"),
            resendable=lambda _name: resendable,
        )
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": tool, "arguments": {"kind": "DcimDevice", "data": {}}},
        }
        async with httpx2.AsyncClient(transport=transport, timeout=10) as http:
            try:
                response = await http.post(
                    url,
                    content=json.dumps(body),
                    headers={
                        "Authorization": f"Bearer {TOKEN_A}",
                        "content-type": "application/json",
                        "accept": "application/json, text/event-stream",
                    },
                )
            except httpx2.HTTPError as exc:
                return type(exc).__name__
            return response.status_code

    return asyncio.run(go()), notes


def tool_calls(double: Double) -> int:
    return sum(1 for call in double.calls() if call["method"] == "tools/call")


@pytest.mark.parametrize("fault", ["http_503", "drop"])
def test_a_write_tool_call_that_may_have_arrived_is_not_sent_again(
    writable_mcp: Double, fault: str
) -> None:
    writable_mcp.reset(fault=fault, fault_first_n=1, fault_methods=["tools/call"])
    outcome, notes = send_tool_call(f"{writable_mcp.url}/mcp", "node_upsert", resendable=False)
    assert outcome != 200
    assert tool_calls(writable_mcp) == 1
    assert len(notes) == 1 and notes[0].endswith("False")


def test_a_read_tool_call_is_sent_again(writable_mcp: Double) -> None:
    writable_mcp.reset(fault="http_503", fault_first_n=1, fault_methods=["tools/call"])
    outcome, notes = send_tool_call(f"{writable_mcp.url}/mcp", "get_nodes", resendable=True)
    assert tool_calls(writable_mcp) == 2
    assert notes == ["tools/call HTTP 503 True"]
    assert (
        outcome != 503
    )  # the resend got past the fault (the bare request is not a full MCP exchange)


def test_a_write_tool_call_is_sent_again_after_a_429_or_a_refused_connection(
    writable_mcp: Double,
) -> None:
    writable_mcp.reset(fault="http_429", fault_first_n=1, fault_methods=["tools/call"])
    send_tool_call(f"{writable_mcp.url}/mcp", "node_upsert", resendable=False)
    assert tool_calls(writable_mcp) == 2  # a 429 means the server did not run it
    closed = f"http://127.0.0.1:{free_port()}/mcp"  # nothing listens: never sent
    outcome, notes = send_tool_call(closed, "node_upsert", resendable=False)
    assert outcome == "ConnectError"
    assert [note.split()[-1] for note in notes] == ["True", "True", "True", "False"]
