"""The agent runs a user would write, shared by the baseline worker and the limit runner.

Same work as an agentq job: an MCP session with the user's token, the server's prompt as the
instructions, one Agents SDK run. ``Shared`` holds what a careful user reuses across runs: one
model client (hence one SSL context and connection pool), and the prompt and tool list, through
the same per-process caches as agentq's worker (``worker.prompts``, ``worker.tool_policy``; the
listing is handed to each run's server by ``bench.sdk_seed``) so that the limit does exactly the
work an agentq job does and nothing else. The baseline passes
none and makes everything fresh per run. ``run_seed`` is what the Infrahub MCP server's own
Agents SDK page shows for many users: the bench's "seed" system.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import httpx2
from agents import Agent, OpenAIChatCompletionsModel, Runner, set_tracing_disabled
from agents.mcp import MCPServerStreamableHttp
from openai import AsyncOpenAI

from bench.sdk_seed import seed
from worker.prompts import PromptCache
from worker.tool_policy import ToolsCache

PROMPT = "infrahub_agent"
CACHE_SECONDS = 300.0
MODEL = "demo-model"

set_tracing_disabled(True)  # nothing to export to: no OpenAI key here


@dataclass
class Shared:
    """What the limit reuses across runs: everything a careful user can share in one process,
    so the limit is what the SDK itself can do (agentq's worker shares the same things)."""

    model: OpenAIChatCompletionsModel
    ssl_context: ssl.SSLContext = field(default_factory=ssl.create_default_context)
    prompts: PromptCache = field(default_factory=lambda: PromptCache(CACHE_SECONDS))
    tools: ToolsCache = field(default_factory=lambda: ToolsCache(CACHE_SECONDS))

    def client_factory(
        self, headers: dict[str, str] | None = None, timeout: Any = None, auth: Any = None
    ) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            headers=headers, timeout=timeout, auth=auth, verify=self.ssl_context
        )


def make_model(model_url: str) -> OpenAIChatCompletionsModel:
    client = AsyncOpenAI(base_url=model_url, api_key="bench-no-key", max_retries=2)
    return OpenAIChatCompletionsModel(model=MODEL, openai_client=client)


async def run_once(
    question: str, token: str, mcp_url: str, model_url: str, shared: Shared | None = None
) -> float:
    """One agent run; returns when it finished (epoch seconds)."""
    model = shared.model if shared is not None else make_model(model_url)
    params: dict[str, Any] = {
        "url": mcp_url,
        "headers": {"Authorization": f"Bearer {token}"},
        "timeout": 30,
    }
    if shared is not None:
        params["httpx_client_factory"] = shared.client_factory
    server = MCPServerStreamableHttp(
        params=params,  # type: ignore[arg-type]
        cache_tools_list=True,
        client_session_timeout_seconds=60,
    )
    async with server:
        if shared is None:
            prompt = await server.get_prompt(PROMPT, {})
            text = "\n".join(getattr(m.content, "text", "") for m in prompt.messages)
        else:
            assert server.session is not None
            listing, _cached = await shared.tools.listing(server.session, mcp_url)
            seed(server, listing.tools)
            text, _cached = await shared.prompts.get(server, PROMPT)
        agent = Agent(name="bench", instructions=text, mcp_servers=[server], model=model)
        await Runner.run(agent, question, max_turns=10)
    return time.time()


async def run_seed(question: str, token: str, mcp_url: str) -> float:
    """One question as the multi-tenant handler on the Infrahub MCP server's Agents SDK page
    answers it: a new ``MCPServerStreamableHttp`` with the asking user's token, the server's
    prompt fetched, one run, SDK defaults otherwise (no tool-list cache, so the SDK lists tools
    every turn; its own HTTP client per server; the default model provider, which reads
    ``OPENAI_BASE_URL`` and speaks the Responses API). Returns when it finished."""
    async with MCPServerStreamableHttp(
        name="infrahub",
        params={"url": mcp_url, "headers": {"Authorization": f"Bearer {token}"}},
    ) as server:
        prompt = await server.get_prompt(PROMPT, {})
        text = "\n".join(getattr(m.content, "text", "") for m in prompt.messages)
        agent = Agent(name="Infra Analyst", instructions=text, mcp_servers=[server], model=MODEL)
        await Runner.run(agent, question)
    return time.time()
