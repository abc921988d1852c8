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
from openai.types.chat import ChatCompletion
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
from doubles.prompt_cache import Prefix, PromptCache, block_tokens, prefixes, prompt_blocks
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


# --- prompt caching, service tiers and per-model failures -----------------------------------


def prompt_of(model: str, key: str, blocks: list[Any]) -> list[Prefix]:
    return prefixes(model, key, blocks, block_tokens(blocks))


def test_prompt_cache_remembers_prefixes_for_a_while_and_within_bounds() -> None:
    now = [0.0]
    cache = PromptCache(max_entries=3, clock=lambda: now[0])
    blocks: list[Any] = ["x" * 4096, "a question"]  # 1024 tokens, then 3
    first = prompt_of("m", "", blocks)
    assert [p.tokens for p in first] == [1024, 1027]
    assert cache.serve(first, ttl_s=60) == 0
    assert cache.serve(prompt_of("m", "", [blocks[0], "another"]), ttl_s=60) == 1024
    assert cache.serve(first, ttl_s=60) == 1024  # the whole prompt, in steps of 128
    assert cache.serve(prompt_of("m", "key", blocks), ttl_s=60) == 0  # another partition
    assert cache.serve(prompt_of("other", "", blocks), ttl_s=60) == 0
    assert len(cache) == 3  # the least recently used were dropped
    assert cache.serve(first, ttl_s=60) == 0  # ... and ``first`` was among them
    now[0] += 61
    assert cache.serve(first, ttl_s=60) == 0  # unused for longer than the TTL
    assert cache.serve(prompt_of("m", "", ["x" * 4000, "q"]), ttl_s=60) == 0  # under 1024


def test_prompt_blocks_read_both_request_shapes() -> None:
    tool = {"type": "function", "function": {"name": "t", "parameters": {}}}
    system = {"role": "system", "content": "be brief"}
    developer = {"role": "developer", "content": "use tools"}
    user = {"role": "user", "content": "q?"}
    chat = {"messages": [system, developer, user, system], "tools": [tool]}
    assert prompt_blocks(chat, responses=False) == [[system, developer], tool, user, system]
    responses = {"instructions": "be brief", "tools": [tool], "input": [user, user]}
    assert prompt_blocks(responses, responses=True) == ["be brief", tool, user, user]
    assert prompt_blocks({"input": "q?"}, responses=True) == ["q?"]


# About 1,300 tokens of tools shared by every request, as an agent's tool list is.
LONG_TOOLS = [
    {
        "name": f"tool_{n}",
        "description": f"Tool {n}. " + "Reads the inventory and says what it holds. " * 40,
        "parameters": {"type": "object", "properties": {"kind": {"type": "string"}}},
    }
    for n in range(3)
]


def ask(double: Double, api: str, question: str, tools: Any = LONG_TOOLS, **extra: Any) -> Any:
    """A request with the usual prefix (instructions, then tools) and ``question`` last, sent
    and parsed by the client library."""
    instructions = "You answer questions about the network inventory."
    with openai.OpenAI(base_url=f"{double.url}/v1", api_key="unused", max_retries=0) as client:
        if api == "chat":
            return client.chat.completions.create(
                model="demo-model",
                messages=[
                    {"role": "system", "content": instructions},
                    {"role": "user", "content": question},
                ],
                tools=[{"type": "function", "function": tool} for tool in tools],
                **extra,
            )
        return client.responses.create(
            model="demo-model",
            instructions=instructions,
            tools=[{"type": "function", **tool} for tool in tools],
            input=[{"role": "user", "content": question}],
            **extra,
        )


def cached(answer: Any) -> tuple[int, int]:
    """The cached and total input tokens of a parsed answer, from either API."""
    usage = answer.usage
    if isinstance(answer, ChatCompletion):
        return usage.prompt_tokens_details.cached_tokens, usage.prompt_tokens
    return usage.input_tokens_details.cached_tokens, usage.input_tokens


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_shared_long_prefix_is_reported_cached(model: Double, api: str) -> None:
    assert cached(ask(model, api, "Which devices are in atl1?"))[0] == 0
    hit, total = cached(ask(model, api, "Which sites do we have?"))
    assert hit >= 1024 and hit % 128 == 0 and hit <= total
    assert hit > total - 128 - 20  # all but the rounding and the new question
    # Another prompt_cache_key lands on another cache machine: nothing cached there yet.
    assert cached(ask(model, api, "Which sites?", prompt_cache_key="run-2"))[0] == 0
    assert cached(ask(model, api, "Which racks?", prompt_cache_key="run-2"))[0] == hit
    calls = model.calls()
    assert [c["cached_tokens"] for c in calls] == [0, hit, 0, hit]
    assert [c["prompt_cache_key"] for c in calls] == [None, None, "run-2", "run-2"]
    stats = httpx.get(f"{model.url}/_double/stats", timeout=5).json()
    assert stats["cached_tokens"] == 2 * hit
    # A prefix under 1024 tokens is never cached.
    short = LONG_TOOLS[:1]
    ask(model, api, "Which devices?", tools=short)
    assert cached(ask(model, api, "Which sites?", tools=short))[0] == 0
    # Off, nothing is cached; a reset forgets what was.
    model.configure(prompt_caching=False)
    assert cached(ask(model, api, "Which platforms?"))[0] == 0
    model.reset()
    assert cached(ask(model, api, "Which platforms?"))[0] == 0


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_service_tier_is_echoed_and_checked(model: Double, api: str) -> None:
    asked = [None, "auto", "default", "flex", "priority"]
    served = [ask(model, api, "q", service_tier=tier).service_tier for tier in asked]
    assert served == ["default", "default", "default", "flex", "priority"]
    calls = model.calls()
    assert [(c["service_tier"], c["served_tier"]) for c in calls] == list(
        zip(asked, served, strict=True)
    )
    stats = httpx.get(f"{model.url}/_double/stats", timeout=5).json()
    assert stats["by_tier"] == {"default": 3, "flex": 1, "priority": 1}
    path = "chat/completions" if api == "chat" else "responses"
    bad = httpx.post(
        f"{model.url}/v1/{path}",
        json={"model": "m", "input": "q", "messages": [], "service_tier": "turbo"},
        timeout=5,
    )
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "service_tier"


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_flex_unavailable_is_a_429_without_retry_after(model: Double, api: str) -> None:
    model.configure(flex_unavailable=True)
    path = "chat/completions" if api == "chat" else "responses"
    body = {"model": "m", "input": "q", "messages": [{"role": "user", "content": "q"}]}
    flex = httpx.post(f"{model.url}/v1/{path}", json={**body, "service_tier": "flex"}, timeout=5)
    assert flex.status_code == 429
    assert flex.json() == {
        "error": {
            "message": "Resource unavailable: flex processing capacity is temporarily short; "
            "retry later or use the default service tier.",
            "type": "resource_unavailable",
            "param": None,
            "code": "resource_unavailable",
        }
    }
    assert not [name for name in flex.headers if name.startswith("retry-after")]
    default = httpx.post(f"{model.url}/v1/{path}", json=body, timeout=5)
    assert default.status_code == 200 and default.json()["service_tier"] == "default"
    calls = model.calls()
    assert [(c["status"], c["fault"], c["served_tier"]) for c in calls] == [
        (429, "flex_unavailable", None),
        (200, None, "default"),
    ]
    stats = httpx.get(f"{model.url}/_double/stats", timeout=5).json()
    assert stats["by_fault"] == {"flex_unavailable": 1} and stats["rate_limited"] == 0


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_failing_models_answer_503_and_others_200(model: Double, api: str) -> None:
    model.configure(failing_models=["demo-model"], flex_unavailable=True)
    path = "chat/completions" if api == "chat" else "responses"
    body = {"input": "q", "messages": [{"role": "user", "content": "q"}]}
    down = httpx.post(
        f"{model.url}/v1/{path}",
        json={**body, "model": "demo-model", "service_tier": "flex"},  # 503 all the same
        timeout=5,
    )
    assert down.status_code == 503
    assert down.json()["error"]["message"] == "The server had an error"
    assert down.json()["error"]["type"] == "server_error"
    other = httpx.post(f"{model.url}/v1/{path}", json={**body, "model": "other"}, timeout=5)
    assert other.status_code == 200
    calls = model.calls()
    assert [(c["model"], c["status"], c["fault"]) for c in calls] == [
        ("demo-model", 503, "model_down"),
        ("other", 200, None),
    ]
    for bad in ("demo-model", [1], {"demo-model": True}):
        knob = httpx.post(f"{model.url}/_double/config", json={"failing_models": bad}, timeout=5)
        assert knob.status_code == 400 and "failing_models" in knob.json()["error"]
