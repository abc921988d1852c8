"""The model double: its policy as pure functions, and its HTTP face through the real clients."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from agents import (
    Agent,
    AgentOutputSchema,
    ModelBehaviorError,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
)
from agents.models.interface import Model
from agents.tracing import set_trace_processors
from pydantic import BaseModel

from agentq.answers import items_schema
from doubles.model_policy import (
    ANSWER_PREFIX,
    Conversation,
    Findings,
    ToolSpec,
    chat_conversation,
    decide,
    fill_schema,
    responses_conversation,
)
from tests.conftest import Double, start_model_double
from worker.answer_schema import ItemsOutput


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


# --- structured output, as pure functions ---------------------------------------------------


class Device(BaseModel):
    name: str
    site: str | None


class Devices(BaseModel):
    items: list[Device]


DEVICES = ["atl1-edge1", "atl1-spine1", "zz-new1", "atl1-leaf1"]  # the tool's order, not sorted
NODES = json.dumps({"nodes": DEVICES, "count": 4, "total_count": 4})
FOUND = Findings(ANSWER_PREFIX + "Found 4", DEVICES, 4)


def filled(schema: dict[str, Any], found: Findings = FOUND) -> Any:
    """What the filler makes of ``schema``, checked to fit it."""
    value = fill_schema(schema, found)
    jsonschema.validate(value, schema)
    return value


@pytest.mark.parametrize("key", ["name", "device"])
def test_items_schema_gets_one_item_per_label_in_order(key: str) -> None:
    assert filled(items_schema(key)) == {"items": [{key: label} for label in DEVICES]}
    assert filled(items_schema(key), Findings("nothing")) == {"items": []}


def test_filler_follows_the_sdks_schemas() -> None:
    strict = AgentOutputSchema(Devices).json_schema()  # $defs, $ref, anyOf with null
    assert filled(strict) == {"items": [{"name": d, "site": d} for d in DEVICES]}
    wrapped = {
        output_type: AgentOutputSchema(output_type).json_schema()
        for output_type in (list[str], int, bool)
    }
    assert filled(wrapped[list[str]]) == {"response": DEVICES}
    assert filled(wrapped[int]) == {"response": 4}
    assert filled(wrapped[bool]) == {"response": True}


def test_filler_keywords() -> None:
    schema = {
        "type": "object",
        "properties": {
            "status": {"enum": ["ok", "degraded"]},
            "version": {"const": 2},
            "total": {"type": "number"},
            "nested": {"allOf": [{"$ref": "#/$defs/Part"}, {"required": ["extra"]}]},
            "maybe": {"type": ["null", "integer"]},
            "lists": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
        },
        "$defs": {
            "Part": {"properties": {"part": {"type": "string"}, "extra": {"type": "boolean"}}}
        },
    }
    value = filled(schema)  # no ``required``: every property
    assert value["status"] == "ok" and value["version"] == 2 and value["total"] == 4
    assert value["nested"] == {"extra": True}  # allOf: the required names of every part
    assert value["maybe"] == 4
    assert value["lists"] == [[] for _ in DEVICES]  # an item's own lists: nothing known


def test_final_answer_fits_the_requested_schema() -> None:
    schema = items_schema("device")
    asked = Conversation("List all devices", [NODES], TOOLS, schema)
    text = decide(asked, "default", []).text
    assert text is not None and json.loads(text) == {"items": [{"device": d} for d in DEVICES]}
    kinds = Conversation("Which kinds start with Dcim?", [json.dumps(KINDS)], TOOLS, schema)
    text = decide(kinds, "default", []).text
    assert text is not None
    assert json.loads(text) == {"items": [{"device": "DcimDevice"}, {"device": "DcimRack"}]}
    found = Conversation("Where is x?", [json.dumps(["a", "b"])], TOOLS, schema)  # search_nodes
    assert decide(found, "default", []).text == json.dumps(
        {"items": [{"device": "a"}, {"device": "b"}]}
    )
    failed = Conversation("List all devices", ["Tool error: boom"], TOOLS, schema)
    assert decide(failed, "default", []).text == json.dumps({"items": []})
    # off_schema: the free text, as if no schema were asked; a scripted text stays as written.
    plain = decide(asked, "default", [], "off_schema").text
    assert plain == ANSWER_PREFIX + "Found 4: " + ", ".join(DEVICES)
    assert decide(asked, "script", [{"text": "as written"}]).text == "as written"
    # Still a tool call first: the schema only shapes the final answer.
    assert decide(Conversation("List all devices", [], TOOLS, schema), "default", []).tool_calls


def test_reads_the_requested_schema_from_both_apis() -> None:
    schema = items_schema("name")
    user = {"role": "user", "content": "q?"}
    chat = chat_conversation(
        {
            "messages": [user],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "final_output", "strict": False, "schema": schema},
            },
        }
    )
    responses = responses_conversation(
        {
            "input": [user],
            "text": {
                "format": {
                    "type": "json_schema",
                    "name": "final_output",
                    "strict": False,
                    "schema": schema,
                }
            },
        }
    )
    assert chat.output_schema == responses.output_schema == schema
    assert (
        chat_conversation({"messages": [user], "response_format": {"type": "text"}}).output_schema
        is None
    )
    assert (
        responses_conversation({"input": "q?", "text": {"format": {"type": "text"}}}).output_schema
        is None
    )


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


# --- structured output through the Agents SDK -----------------------------------------------


@function_tool
def get_nodes(kind: str) -> str:
    """The labels of every node of ``kind``."""
    return NODES


def sdk_model(double: Double, api: str) -> Model:
    client = client_for(double)
    if api == "chat":
        return OpenAIChatCompletionsModel(model="demo-model", openai_client=client)
    return OpenAIResponsesModel(model="demo-model", openai_client=client)


async def run_devices_agent(double: Double, api: str, output_type: Any) -> Any:
    set_trace_processors([])  # nothing leaves the machine
    agent = Agent(
        name="t",
        instructions="answer",
        tools=[get_nodes],
        model=sdk_model(double, api),
        output_type=output_type,
    )
    return await Runner.run(agent, "List all devices")


@pytest.mark.anyio
@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_sdk_structured_output_gets_the_tools_labels(model: Double, api: str) -> None:
    result = await run_devices_agent(model, api, Devices)
    assert isinstance(result.final_output, Devices)
    assert [d.name for d in result.final_output.items] == DEVICES
    result = await run_devices_agent(model, api, ItemsOutput("device"))  # the worker's own
    assert json.loads(result.final_output) == {"items": [{"device": d} for d in DEVICES]}
    result = await run_devices_agent(model, api, list[str])  # the SDK's {"response": ...}
    assert result.final_output == DEVICES
    # The JSON answer is counted like any other output.
    async with httpx.AsyncClient() as http:
        stats = (await http.get(f"{model.url}/_double/stats")).json()
    tool_turn, final = model.calls()[-2:]
    assert final["text"] == json.dumps({"response": DEVICES})
    usage = result.context_wrapper.usage
    assert usage.output_tokens == tool_turn["output_tokens"] + final["output_tokens"]
    assert stats["by_api"] == {api: 6}


@pytest.mark.anyio
@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_off_schema_makes_the_sdk_refuse_the_answer(model: Double, api: str) -> None:
    model.configure(structured="off_schema")
    with pytest.raises(ModelBehaviorError):
        await run_devices_agent(model, api, Devices)
    with pytest.raises(ModelBehaviorError):
        await run_devices_agent(model, api, ItemsOutput("name"))
    model.reset()  # back to the start-up knobs: follow
    result = await run_devices_agent(model, api, ItemsOutput("name"))
    assert json.loads(result.final_output) == {"items": [{"name": d} for d in DEVICES]}


def test_responses_echo_the_requested_format(model: Double) -> None:
    text_format = {
        "type": "json_schema",
        "name": "final_output",
        "strict": False,
        "schema": items_schema("name"),
    }
    body = {"model": "m", "input": "hello", "text": {"format": text_format}}
    answer = httpx.post(f"{model.url}/v1/responses", json=body, timeout=5).json()
    assert answer["text"] == {"format": text_format}
    assert json.loads(answer["output"][0]["content"][0]["text"]) == {"items": []}
    plain = httpx.post(f"{model.url}/v1/responses", json={"model": "m", "input": "hi"}, timeout=5)
    assert plain.json()["text"] == {"format": {"type": "text"}}


def test_structured_knob_is_checked_and_reset(model: Double) -> None:
    bad = httpx.post(f"{model.url}/_double/config", json={"structured": "maybe"}, timeout=5)
    assert bad.status_code == 400 and "structured must be one of" in bad.json()["error"]
    reset = httpx.post(f"{model.url}/_double/reset", json={"structured": "off_schema"}, timeout=5)
    assert reset.json()["structured"] == "off_schema"
    assert httpx.get(f"{model.url}/_double/config", timeout=5).json()["structured"] == "off_schema"
