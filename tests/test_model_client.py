"""``worker.model_client.ModelClient`` sends exactly what a stock ``AsyncOpenAI`` sends.

The same Agents SDK runs go through both clients, to the model double over real HTTP, on both
model APIs: multi-turn runs with function tools, model settings with extra headers, query and
body, and a structured output. Every request is recorded at the HTTP transport and compared:
method, URL, headers and JSON body. This is the test that fails when an openai upgrade changes
what ``create`` sends (the module copies its shape and uses its private parts).
"""

from __future__ import annotations

import asyncio
import json
import re
from importlib.metadata import version
from typing import Any

import httpx2
import pytest
from agents import (
    Agent,
    FunctionTool,
    Model,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunContextWrapper,
    Runner,
    set_tracing_disabled,
)
from openai import AsyncOpenAI
from pydantic import BaseModel

from tests.conftest import Double
from worker.model_client import CHECKED_VERSIONS, ModelClient, _as_given

# The double's response and call ids are random: each is numbered in the order it first appears.
IDS = re.compile(r"\b(?:call|fc|msg|resp|rs|chatcmpl)_[0-9a-f]{8,}\b")
# Headers that differ between any two requests, whichever client sends them.
VOLATILE = {"content-length", "x-stainless-retry-count", "x-stainless-read-timeout"}


class Recorder(httpx2.AsyncHTTPTransport):
    """A real transport that also keeps what it sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, Any]] = []
        self.ids: dict[str, str] = {}

    def _numbered(self, text: str) -> str:
        return IDS.sub(lambda m: self.ids.setdefault(m.group(0), f"id-{len(self.ids)}"), text)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        self.sent.append(
            {
                "method": request.method,
                "url": str(request.url),
                "headers": {
                    k.lower(): v for k, v in request.headers.items() if k.lower() not in VOLATILE
                },
                "body": json.loads(self._numbered(body.decode())) if body else None,
            }
        )
        return await super().handle_async_request(request)


class Devices(BaseModel):
    names: list[str]


async def _lookup(_ctx: RunContextWrapper[Any], arguments: str) -> str:
    return json.dumps({"kind": json.loads(arguments).get("kind"), "nodes": ["atl1-edge1"]})


NODES_TOOL = FunctionTool(
    name="get_nodes",
    description="Read nodes of a kind",
    params_json_schema={
        "type": "object",
        "properties": {"kind": {"type": "string"}},
        "required": ["kind"],
        "additionalProperties": False,
    },
    on_invoke_tool=_lookup,
)

SETTINGS = ModelSettings(
    temperature=0.2,
    max_tokens=500,
    extra_headers={"X-Agentq-Test": "yes"},
    extra_query={"api-version": "2025-01-01"},
    extra_body={"metadata_tag": "agentq"},
)


def _model(api: str, client: AsyncOpenAI) -> Model:
    if api == "chat_completions":
        return OpenAIChatCompletionsModel(model="demo-model", openai_client=client)
    return OpenAIResponsesModel(model="demo-model", openai_client=client)


async def _runs(api: str, client: AsyncOpenAI) -> list[str]:
    """The runs compared: a tool call then an answer, and the same with settings and a
    structured output (the double answers in text, so the SDK may refuse that answer: the
    requests are what is compared, and the error, if any)."""
    outcomes: list[str] = []
    plain = Agent(name="a", instructions="Answer.", tools=[NODES_TOOL], model=_model(api, client))
    shaped = plain.clone(model_settings=SETTINGS, output_type=Devices)
    for agent in (plain, shaped):
        try:
            result = await Runner.run(agent, "Which devices are in site atl1?", max_turns=4)
            outcomes.append(f"ok: {result.final_output!r}")
        except Exception as exc:  # compared across clients, not judged here
            outcomes.append(f"{type(exc).__name__}: {exc}")
    return outcomes


def _through(client_type: type[AsyncOpenAI], api: str, url: str) -> tuple[Recorder, list[str]]:
    recorder = Recorder()
    client = client_type(
        api_key="test-key",
        base_url=f"{url}/v1",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=recorder),
    )
    set_tracing_disabled(True)
    return recorder, asyncio.run(_runs(api, client))


@pytest.mark.parametrize("api", ["chat_completions", "responses"])
def test_requests_are_what_the_stock_client_sends(model_double: Double, api: str) -> None:
    model_double.reset()
    stock, stock_outcomes = _through(AsyncOpenAI, api, model_double.url)
    ours, our_outcomes = _through(ModelClient, api, model_double.url)
    assert our_outcomes == stock_outcomes
    # The runs did what is compared: a tool call and its answer, settings and a schema sent.
    assert len(stock.sent) >= 4
    bodies = json.dumps([r["body"] for r in stock.sent])
    assert "get_nodes" in bodies and "atl1-edge1" in bodies and "metadata_tag" in bodies
    assert any(r["headers"].get("x-agentq-test") == "yes" for r in stock.sent)
    assert any("api-version=2025-01-01" in r["url"] for r in stock.sent)
    assert "Devices" in bodies
    assert ours.sent == stock.sent


def test_checked_version_is_installed() -> None:
    """A new openai minor version: check the comparison above passes, then move the pin."""
    assert version("openai").startswith(CHECKED_VERSIONS["openai"]), (
        f"openai {version('openai')} installed; worker/model_client.py was checked against "
        f"{CHECKED_VERSIONS['openai']}x"
    )


def test_what_it_cannot_send_as_given_goes_to_openai() -> None:
    """Streams and parameters that are not plain JSON take openai's own path (its walk)."""
    assert _as_given({"model": "m", "stream": True, "messages": []}) is None
    assert _as_given({"model": "m", "messages": [], "response_format": Devices}) is None
    assert _as_given({"model": "m", "messages": ({"role": "user", "content": b"x"},)}) is None
    given = _as_given({"model": "m", "messages": [], "extra_headers": {"A": "1"}})
    assert given == (
        {"model": "m", "messages": []},
        {"headers": {"A": "1"}, "security": {"bearer_auth": True}},
    )
