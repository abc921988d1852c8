"""The tool bridge (``worker.tool_bridge``): the agent's MCP tools built once per process and
called on each job's own session, on both model APIs, through a real worker and the doubles.

What the bridge must keep from the SDK's own MCP path: tool errors the model can act on reach
it (and are marked in the trace); a rejected token or a failing server ends the attempt at once
(no model call is paid after it); only the policy's tools are offered, and a tool not offered
never reaches the server; the trace's steps say what was called, with what, and what came back.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp.types import CallToolResult, ImageContent, TextContent, Tool, ToolAnnotations

from agentq.jobs import JobStatus
from agentq.token_proof import PROOF_ARGUMENTS
from tests.conftest import ONE_TOOL_STEPS, TOKEN_A, Double, Stack
from worker.tool_bridge import ToolBridge, describe, model_output, output_checker
from worker.tool_policy import Listing, ToolPolicy

READ_TOOL = Tool(
    name="get_nodes",
    description="Read nodes",
    input_schema={
        "type": "object",
        "properties": {"kind": {"type": "string"}},
        "required": ["kind"],
    },
    annotations=ToolAnnotations(read_only_hint=True),
)
WRITE_TOOL = Tool(
    name="node_upsert", input_schema={"type": "object"}, annotations=ToolAnnotations(title="Upsert")
)


@pytest.fixture(autouse=True)
def fresh_doubles(mcp_double: Double, model_double: Double) -> None:
    mcp_double.reset()
    model_double.reset()


@pytest.fixture(params=["chat_completions", "responses"])
def api_stack(request: pytest.FixtureRequest) -> Stack:
    """The session's worker (Chat Completions), or the one that speaks the Responses API."""
    if request.param == "responses":
        stack: Stack = request.getfixturevalue("responses_worker")
        return stack
    request.getfixturevalue("worker")
    stack = request.getfixturevalue("stack")
    return stack


def agent_tool_calls(double: Double) -> list[dict[str, Any]]:
    """The agents' tool calls the MCP server received (not the workers' token proofs)."""
    return [
        c
        for c in double.calls()
        if c["method"] == "tools/call" and c.get("arguments") != PROOF_ARGUMENTS
    ]


def run(stack: Stack, model_double: Double, script: list[dict[str, Any]]) -> Any:
    model_double.configure(policy="script", script=script)
    client = stack.client()
    job = client.wait(client.submit("Which devices are in atl1?", TOKEN_A), TOKEN_A, timeout=60)
    return job, client.trace(job.id, TOKEN_A)


def test_a_tool_error_reaches_the_model_and_is_marked_in_the_trace(
    api_stack: Stack, mcp_double: Double, model_double: Double
) -> None:
    job, trace = run(
        api_stack,
        model_double,
        [
            {"tool": "get_nodes", "arguments": {"kind": "DcimDevise"}},
            {"text": "fixed it"},
        ],
    )
    assert job.status == JobStatus.SUCCEEDED, job.error
    (attempt,) = trace.attempts
    (step,) = [s for s in attempt.steps if s.kind == "tool_call"]
    assert step.tool == "get_nodes" and step.server == "infrahub"
    assert step.arguments == {"kind": "DcimDevise"}
    assert step.is_error and "DcimDevise" in (step.error or "")
    # The model's second request carried the error as the tool's output.
    second = model_double.calls()[-1]
    assert second["tool_results"] == 1
    assert trace.totals.tool_errors == 1


def test_missing_arguments_go_back_to_the_model_without_a_call(
    api_stack: Stack, mcp_double: Double, model_double: Double
) -> None:
    job, trace = run(
        api_stack, model_double, [{"tool": "get_nodes", "arguments": {}}, {"text": "sorry"}]
    )
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert agent_tool_calls(mcp_double) == []
    (step,) = [s for s in trace.attempts[0].steps if s.kind == "tool_call"]
    assert step.is_error and "missing required parameters: kind" in (step.error or "")


@pytest.mark.parametrize(
    ("fault", "code"), [("http_401", "auth_error"), ("http_503", "mcp_unavailable")]
)
def test_auth_and_transport_failures_end_the_attempt_at_once(
    api_stack: Stack, mcp_double: Double, model_double: Double, fault: str, code: str
) -> None:
    """No second model call is paid for a run whose tool call failed for good; a rejected token
    is final, a failing server is retried (and succeeds once it recovers)."""
    # One job first, so the worker has proven TOKEN_A and only the agent's call meets the fault
    # (whichever test ran before); 503 fails for longer than the transport's own resends.
    warm, _trace = run(api_stack, model_double, [{"text": "proven"}])
    assert warm.status == JobStatus.SUCCEEDED, warm.error
    model_double.reset()
    mcp_double.configure(fault=fault, fault_methods=["tools/call"], fault_first_n=4)
    job, trace = run(
        api_stack,
        model_double,
        [{"tool": "get_nodes", "arguments": {"kind": "DcimDevice"}}, {"text": "done"}],
    )
    first = trace.attempts[0]
    assert first.error_code == code, first
    kinds = [s.kind for s in first.steps]
    assert kinds.count("model_call") == 1, kinds  # the attempt ended with the failed call
    if code == "auth_error":
        assert job.status == JobStatus.FAILED and len(trace.attempts) == 1
    else:
        assert job.status == JobStatus.SUCCEEDED, job.error
        assert trace.attempts[-1].outcome == "succeeded"


def test_a_tool_the_policy_does_not_offer_never_reaches_the_server(
    api_stack: Stack, mcp_double: Double, model_double: Double
) -> None:
    job, _trace = run(
        api_stack,
        model_double,
        [{"tool": "node_upsert", "arguments": {"kind": "DcimDevice", "data": {}}}, {"text": "x"}],
    )
    offered = {name for call in model_double.calls() for name in call["tools_offered"]}
    assert "get_nodes" in offered and "node_upsert" not in offered
    assert [c["tool"] for c in agent_tool_calls(mcp_double)] == []
    assert job.status == JobStatus.FAILED, job  # the model called a tool it was not given
    assert job.error is not None and job.error.code == "model_error"


def test_the_trace_steps_hold_the_call_and_its_result(
    api_stack: Stack, mcp_double: Double, model_double: Double
) -> None:
    job, trace = run(
        api_stack,
        model_double,
        [
            {"tool": "get_nodes", "arguments": {"kind": "DcimDevice", "limit": 2}},
            {"text": "two devices"},
        ],
    )
    assert job.status == JobStatus.SUCCEEDED, job.error
    steps = trace.attempts[0].steps
    assert [s.kind for s in steps] == ONE_TOOL_STEPS
    tool = steps[4]
    (received,) = agent_tool_calls(mcp_double)
    assert (tool.tool, tool.arguments) == (received["tool"], received["arguments"])
    assert tool.is_error is False and tool.result_bytes and tool.result_bytes > 0
    assert '"nodes":["atl1-edge1","atl1-leaf1"]' in (tool.result_excerpt or "")
    # Every model call is timed and counted, as the SDK's own spans say.
    assert all(s.duration_ms is not None for s in steps if s.kind in ("model_call", "tool_call"))


# The bridge's own parts, without a worker.


def test_tools_are_built_once_per_listing_and_policy() -> None:
    bridge = ToolBridge()
    listing = Listing.of("http://mcp/mcp", [READ_TOOL, WRITE_TOOL])
    read_only = ToolPolicy(writes=False, read_names=None)
    tools = bridge.tools(listing, read_only)
    assert [t.name for t in tools] == ["get_nodes"]
    assert bridge.tools(Listing.of("http://mcp/mcp", [READ_TOOL, WRITE_TOOL]), read_only) is tools
    writes = bridge.tools(listing, ToolPolicy(writes=True, read_names=None))
    assert [t.name for t in writes] == ["get_nodes", "node_upsert"]
    # A changed listing is a new version: new tools, and the old version's are let go.
    changed = Listing.of("http://mcp/mcp", [READ_TOOL])
    assert changed.version != listing.version
    assert bridge.tools(changed, read_only) is not tools
    assert bridge.tools(listing, read_only) is not tools


def test_the_schema_and_description_are_the_models_view_of_the_tool() -> None:
    (tool,) = ToolBridge().tools(
        Listing.of("u", [READ_TOOL]), ToolPolicy(writes=False, read_names=None)
    )
    assert tool.params_json_schema["required"] == ["kind"]
    assert tool.strict_json_schema is False
    assert describe(READ_TOOL) == "Read nodes"
    assert describe(WRITE_TOOL) == "Upsert"  # no description: the title
    (bare,) = ToolBridge().tools(Listing.of("u", [WRITE_TOOL]), ToolPolicy(True, None))
    assert bare.params_json_schema == {"type": "object", "properties": {}}
    assert "properties" not in (WRITE_TOOL.input_schema or {})  # the listing is not changed


def test_results_become_the_same_output_the_sdk_gives_the_model() -> None:
    text = CallToolResult(content=[TextContent(type="text", text="3 devices")])
    assert model_output(text) == {"type": "text", "text": "3 devices"}
    mixed = CallToolResult(
        content=[
            TextContent(type="text", text="a"),
            ImageContent(type="image", data="AAAA", mime_type="image/png"),
        ]
    )
    assert model_output(mixed) == [
        {"type": "text", "text": "a"},
        {"type": "image", "image_url": "data:image/png;base64,AAAA"},
    ]


def test_structured_results_are_checked_against_the_declared_schema() -> None:
    counted = Tool(
        name="count",
        input_schema={"type": "object"},
        output_schema={
            "type": "object",
            "properties": {"count": {"type": "integer"}},
            "required": ["count"],
        },
    )
    declared = json.loads(json.dumps(counted.output_schema))
    check = output_checker(counted)
    assert check is not None
    assert check(CallToolResult(content=[], structured_content={"count": 3})) is None
    problem = check(CallToolResult(content=[], structured_content={"count": "three"}))
    assert problem is not None and "invalid structured content returned by count" in problem
    assert "no structured content" in (check(CallToolResult(content=[])) or "")
    assert output_checker(READ_TOOL) is None
    assert counted.output_schema == declared  # checking never changes the listing's schema
