"""The clients a worker's event loop shares across all the jobs it runs.

Clients belong to the event loop that made them (an ``AsyncOpenAI`` client used on another loop
fails with "Event loop is closed"), so they are made on the worker's loop, once, and kept per
loop. Building an SSL context costs ~45 ms of CPU, so one context serves every client of the
process: the model clients and the MCP connection pools, one of each per ``JOBS_PER_SHARD``
jobs in flight.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import threading
import weakref
from dataclasses import dataclass

import certifi
import httpx2
from agents import Model, OpenAIChatCompletionsModel, OpenAIResponsesModel, set_tracing_disabled
from openai import DefaultAsyncHttpxClient

from agentq.connections import connect_async
from agentq.errors import ConfigError
from agentq.model_budget import MODEL_BUDGET_KEY, ModelBudget
from agentq.prices import PriceTable, load_prices
from agentq.ratelimit import MCP_RATE_KEY, MODEL_SLOTS_KEY, RateLimiter, Semaphore
from agentq.settings import Settings
from agentq.token_proof import ProofCache
from worker.budget_transport import BudgetTransport
from worker.failures import CURRENT_JOB
from worker.fallback_model import FallbackModel
from worker.limited_transport import SlotTransport
from worker.model_client import ModelClient
from worker.prompts import PromptCache
from worker.tier_transport import FlexTransport
from worker.tool_bridge import ToolBridge
from worker.tool_policy import ToolsCache

_ssl_lock = threading.Lock()
_ssl_context: ssl.SSLContext | None = None


def shared_ssl_context() -> ssl.SSLContext:
    """The process's one client SSL context (certifi's CA bundle)."""
    global _ssl_context
    with _ssl_lock:
        if _ssl_context is None:
            _ssl_context = ssl.create_default_context(cafile=certifi.where())
        return _ssl_context


def check_model_settings(settings: Settings) -> None:
    """Refuse to start a worker that could not reach any model."""
    if settings.openai_api_key is None and not settings.openai_base_url:
        raise ConfigError(
            "OPENAI_API_KEY is not set (set it, or OPENAI_BASE_URL for an OpenAI-compatible "
            "endpoint that needs no key)"
        )


# The jobs in flight that share one model client and one MCP connection pool. httpcore looks
# through every connection of a pool for each request; the reference notes measured one model
# client for 200 jobs in flight at ~45% more CPU per job than for 50. Here, with the pools split,
# 200 vs 50 in flight measured within run-to-run noise (about 10%) of one pool for all.
JOBS_PER_SHARD = 50


@dataclass
class Shard:
    """The models (the configured one, then AGENTQ_MODEL_FALLBACKS, sharing one client and
    connection pool) and a pool of connections to the MCP server, used by up to
    ``JOBS_PER_SHARD`` of the loop's jobs at once."""

    models: list[tuple[str, Model]]
    mcp_pool: httpx2.AsyncHTTPTransport

    def model(self) -> Model:
        """The model an attempt runs with: the first, or (with fallbacks) a ``FallbackModel``
        of its own, which stays with whichever model answered for the rest of the attempt."""
        if len(self.models) == 1:
            return self.models[0][1]
        return FallbackModel(self.models)


@dataclass
class LoopClients:
    """Everything a job borrows from its loop: a shard of connections (``next_shard``), the
    prompt and tool-list caches, the tools built from the list, and the shared MCP rate
    limiter."""

    shards: list[Shard]
    model_name: str
    prices: PriceTable
    prompts: PromptCache
    tools: ToolsCache
    bridge: ToolBridge
    proofs: ProofCache
    mcp_limiter: RateLimiter | None
    turn: int = 0

    def next_shard(self) -> Shard:
        """The shards in turn: the loop's jobs spread evenly over them."""
        self.turn += 1
        return self.shards[self.turn % len(self.shards)]


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopClients] = (
    weakref.WeakKeyDictionary()
)


def loop_clients(settings: Settings) -> LoopClients:
    """This loop's clients, made on first use. Call from a coroutine running on the loop."""
    loop = asyncio.get_running_loop()
    clients = _per_loop.get(loop)
    if clients is None:
        clients = _make_clients(settings)
        _per_loop[loop] = clients
    return clients


async def _note_model_failure(response: httpx2.Response) -> None:
    """Put a failed model request (retried or not by the OpenAI client) in the job's trace."""
    if response.status_code >= 400:
        job = CURRENT_JOB.get()
        if job is not None:
            job.http_error("model", response.request.url.path, f"HTTP {response.status_code}", True)


def _make_clients(settings: Settings) -> LoopClients:
    check_model_settings(settings)
    # The SDK would upload traces to OpenAI; agentq records its own (worker.tracing).
    set_tracing_disabled(True)
    limits_redis = connect_async(settings.redis_url, sentinel_master=settings.redis_sentinel_master)
    slots = (
        Semaphore(
            limits_redis,
            MODEL_SLOTS_KEY,
            settings.model_max_concurrency,
            lease_seconds=settings.model_timeout_seconds + 30,
        )
        if settings.model_max_concurrency > 0
        else None
    )
    budget = (
        ModelBudget(
            limits_redis,
            MODEL_BUDGET_KEY,
            settings.model_tokens_per_minute,
            settings.model_requests_per_minute,
        )
        if settings.model_tokens_per_minute > 0 or settings.model_requests_per_minute > 0
        else None
    )
    count = max(1, math.ceil(settings.worker_concurrency / JOBS_PER_SHARD))
    per_shard = math.ceil(settings.worker_concurrency / count)
    name = settings.model_name
    return LoopClients(
        shards=[_make_shard(settings, name, per_shard, slots, budget) for _ in range(count)],
        model_name=name,
        prices=load_prices(settings.prices_file),
        prompts=PromptCache(settings.prompt_cache_seconds),
        tools=ToolsCache(settings.tools_cache_seconds),
        bridge=ToolBridge(),
        proofs=ProofCache(settings.token_proof_seconds),
        mcp_limiter=(
            RateLimiter(limits_redis, MCP_RATE_KEY, settings.mcp_max_requests_per_second)
            if settings.mcp_max_requests_per_second > 0
            else None
        ),
    )


def _make_shard(
    settings: Settings,
    name: str,
    jobs: int,
    slots: Semaphore | None,
    budget: ModelBudget | None,
) -> Shard:
    """One model client and one MCP connection pool, for ``jobs`` jobs in flight. The shared
    limits (``slots``, ``budget``) are the loop's, one object for all shards."""
    transport: httpx2.AsyncBaseTransport = httpx2.AsyncHTTPTransport(
        verify=shared_ssl_context(),
        limits=httpx2.Limits(
            max_connections=max(100, jobs * 2), max_keepalive_connections=max(20, jobs)
        ),
    )
    if slots is not None:
        transport = SlotTransport(transport, slots)
    if budget is not None:
        # Outside the slots: a request waiting for budget holds none.
        transport = BudgetTransport(
            transport, budget, max_wait_seconds=settings.job_deadline_seconds
        )
    # Outermost: a flex try that waits for capacity holds neither budget nor a slot.
    transport = FlexTransport(transport, settings.flex_tries, settings.flex_backoff_seconds)
    http_client = DefaultAsyncHttpxClient(
        event_hooks={"response": [_note_model_failure]},
        timeout=httpx2.Timeout(settings.model_timeout_seconds, connect=10.0),
        transport=transport,
    )
    api_key = (
        settings.openai_api_key.get_secret_value()
        if settings.openai_api_key is not None
        else "no-key-needed"
    )
    client = ModelClient(
        api_key=api_key,
        base_url=settings.openai_base_url,
        max_retries=settings.model_max_retries,
        timeout=settings.model_timeout_seconds,
        http_client=http_client,
    )
    models: list[tuple[str, Model]] = []
    for each in settings.models:
        model: Model
        if settings.model_api == "chat_completions":
            model = OpenAIChatCompletionsModel(model=each, openai_client=client)
        else:
            model = OpenAIResponsesModel(model=each, openai_client=client)
        models.append((each, model))
    # Keep-alive connections to the MCP server for the shard's jobs (each request carries its
    # own job's token); unbounded, as each job's session holds one or two at a time.
    mcp_pool = httpx2.AsyncHTTPTransport(
        verify=shared_ssl_context(),
        limits=httpx2.Limits(max_connections=None, max_keepalive_connections=jobs * 2),
    )
    return Shard(models=models, mcp_pool=mcp_pool)
