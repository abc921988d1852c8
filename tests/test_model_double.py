"""The model double: its policy as pure functions, and its HTTP face through the real clients."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from agents import Agent, OpenAIChatCompletionsModel, OpenAIResponsesModel, Runner, function_tool
from agents.tracing import set_trace_processors

from doubles.model_policy import (
    ANSWER_PREFIX,
    Conversation,
    ToolSpec,
    chat_conversation,
    decide,
    responses_conversation,
)
from tests.conftest import Double, start_model_double


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


TOOLS = [ToolSpec("get_schema"), ToolSpec("get_nodes", ["kind"]), ToolSpec("search_nodes", ["q"])]
KINDS = {"DcimDevice": "Device", "DcimRack": "Rack", "LocationSite": "Site"}


def first_call(question: str) -> tuple[str, dict[str, object]]:
    decision = decide(Conversation(question, [], TOOLS), "default", [])
    (call,) = decision.tool_calls
    return call.name, call.arguments


@pytest.mark.parametrize(
    ("question", "tool", "arguments"),
    [
        ("List every schema kind whose name starts with Dcim", "get_schema", {}),
        (
            "Which devices are in site atl1?",
            "get_nodes",
            {"kind": "DcimDevice", "filters": {"site__name__value": "atl1"}},
        ),
        ("Show all interfaces", "get_nodes", {"kind": "InterfacePhysical"}),
        ("What IP prefixes do we have?", "get_nodes", {"kind": "IpamPrefix"}),
        ("Which platform runs where?", "get_nodes", {"kind": "DcimPlatform"}),
        ("List our sites", "get_nodes", {"kind": "LocationSite"}),
        ("Where is spine1?", "search_nodes", {"query": "spine1", "kind": "DcimDevice"}),
    ],
)
def test_tool_choice(question: str, tool: str, arguments: dict[str, object]) -> None:
    assert first_call(question) == (tool, arguments)


def test_falls_back_to_a_tool_without_required_arguments() -> None:
    conversation = Conversation("Which devices?", [], [ToolSpec("get_session_info")])
    (call,) = decide(conversation, "default", []).tool_calls
    assert call.name == "get_session_info"


def test_answers_from_the_tool_output() -> None:
    question = "List every schema kind whose name starts with Dcim"
    text = decide(Conversation(question, [json.dumps(KINDS)], TOOLS), "default", []).text
    assert text == ANSWER_PREFIX + "2 kinds start with Dcim: DcimDevice, DcimRack"
    nodes = json.dumps({"nodes": ["a", "b"], "total_count": 2})
    text = decide(Conversation("devices?", [nodes], TOOLS), "default", []).text
    assert text == ANSWER_PREFIX + "Found 2: a, b"
    failed = decide(Conversation("devices?", ["Tool error: boom"], TOOLS), "default", []).text
    assert failed is not None and "tool failed" in failed


def test_policies() -> None:
    conversation = Conversation("devices?", ["{}", "{}"], TOOLS)
    assert decide(conversation, "always_tool", []).tool_calls
    assert decide(conversation, "echo", []).text == ANSWER_PREFIX + "devices?"
    script: list[dict[str, Any]] = [
        {"tool": "get_nodes", "arguments": {"kind": "X"}},
        {"text": "done"},
    ]
    assert decide(Conversation("q", [], TOOLS), "script", script).tool_calls[0].arguments == {
        "kind": "X"
    }
    assert decide(conversation, "script", script).text == "done"  # past the end: last step


def test_reads_both_request_shapes() -> None:
    chat = chat_conversation(
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "q?"},
                {"role": "assistant", "tool_calls": []},
                {"role": "tool", "content": [{"type": "text", "text": "out"}]},
            ],
            "tools": [{"type": "function", "function": {"name": "t", "parameters": {}}}],
        }
    )
    assert (chat.question, chat.tool_outputs, [t.name for t in chat.tools]) == (
        "q?",
        ["out"],
        ["t"],
    )
    responses = responses_conversation(
        {
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "q?"}]},
                {"type": "function_call", "call_id": "c", "name": "t", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c", "output": "out"},
            ],
            "tools": [{"type": "function", "name": "t", "parameters": {"required": ["a"]}}],
        }
    )
    assert responses.question == "q?" and responses.tool_outputs == ["out"]
    assert responses.tools[0].required == ["a"]


# --- over HTTP ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model(service_dir: Path) -> Iterator[Double]:
    double = start_model_double(service_dir)
    yield double
    double.service.stop()


@pytest.fixture(autouse=True)
def fresh(request: pytest.FixtureRequest) -> None:
    if "model" in request.fixturenames:
        request.getfixturevalue("model").reset()


def client_for(double: Double, **options: object) -> openai.AsyncOpenAI:
    # A client (and its HTTP pool) per test: clients belong to the event loop that made them.
    return openai.AsyncOpenAI(
        base_url=f"{double.url}/v1",
        api_key="unused",
        http_client=openai.DefaultAsyncHttpxClient(),
        **options,  # type: ignore[arg-type]
    )


@function_tool
def get_schema() -> str:
    """Every schema kind and its label."""
    return json.dumps(KINDS)


@pytest.mark.anyio
@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_a_full_agents_sdk_run(model: Double, api: str) -> None:
    set_trace_processors([])  # nothing leaves the machine
    client = client_for(model)
    chosen = (
        OpenAIChatCompletionsModel(model="demo-model", openai_client=client)
        if api == "chat"
        else OpenAIResponsesModel(model="demo-model", openai_client=client)
    )
    agent = Agent(name="t", instructions="answer", tools=[get_schema], model=chosen)
    result = await Runner.run(agent, "List every schema kind whose name starts with Dcim")
    assert result.final_output == ANSWER_PREFIX + "2 kinds start with Dcim: DcimDevice, DcimRack"
    async with httpx.AsyncClient() as http:
        stats = (await http.get(f"{model.url}/_double/stats")).json()
    usage = result.context_wrapper.usage
    assert stats["by_api"] == {api: 2}
    assert usage.input_tokens == stats["input_tokens"] > 0
    assert usage.output_tokens == stats["output_tokens"] > 0
    calls = model.calls()
    assert calls[0]["tool_calls"] == [{"name": "get_schema", "arguments": {}}]
    assert calls[1]["text"] == result.final_output


@pytest.mark.anyio
async def test_429_with_retry_after_is_retried_by_the_client(model: Double) -> None:
    model.configure(fault="http_429", fault_first_n=1, retry_after_s=0.2)
    client = client_for(model)
    started = time.monotonic()
    answer = await client.chat.completions.create(
        model="demo-model", messages=[{"role": "user", "content": "devices?"}]
    )
    assert answer.choices[0].message.content
    assert time.monotonic() - started >= 0.2
    assert [c["status"] for c in model.calls()] == [429, 200]


@pytest.mark.anyio
async def test_500_surfaces_without_retries(model: Double) -> None:
    model.configure(fault="http_500")
    with pytest.raises(openai.InternalServerError):
        await client_for(model, max_retries=0).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "q"}]
        )


@pytest.mark.anyio
async def test_hang_times_out_and_drop_fails_the_connection(model: Double) -> None:
    model.configure(fault="hang")
    with pytest.raises(openai.APITimeoutError):
        await client_for(model, max_retries=0, timeout=1.0).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "q"}]
        )
    model.configure(fault="drop")
    with pytest.raises(openai.APIConnectionError):
        await client_for(model, max_retries=0).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "q"}]
        )


@pytest.mark.anyio
async def test_latency_knob(model: Double) -> None:
    model.configure(latency_ms=300)
    started = time.monotonic()
    await client_for(model).responses.create(model="m", input="devices?")
    assert time.monotonic() - started >= 0.3


def test_bad_requests_get_openai_shaped_errors(model: Double) -> None:
    for body in (b"not json", json.dumps({"stream": True, "messages": []}).encode()):
        response = httpx.post(f"{model.url}/v1/chat/completions", content=body)
        assert response.status_code == 400
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    bad_knob = httpx.post(f"{model.url}/_double/config", json={"fault": "meteor"})
    assert bad_knob.status_code == 400
