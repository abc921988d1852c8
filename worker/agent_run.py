"""One attempt at one job: an MCP session, the server's prompt, an agent run, and its trace.

Runs as a coroutine on the worker's shared event loop; many attempts run side by side. It never
raises for a failure of the job itself: the outcome and the trace of what happened are returned
so the caller can record them, whatever went wrong.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Any

from agents import Agent, ModelSettings, RunConfig, Runner

from agentq.errors import AgentqError, ErrorCode
from agentq.jobs import Job, Usage
from agentq.logs import get_logger, scrub
from agentq.settings import Settings
from agentq.traces import AttemptTrace, Step, Totals
from worker.answer_schema import ItemsOutput
from worker.clients import loop_clients
from worker.failures import CURRENT_JOB, JobContext, classify
from worker.inflight import inflight
from worker.mcp_session import open_mcp_server
from worker.token_check import prove_token
from worker.tool_policy import Listing, ToolPolicy, resendable_tools
from worker.tracing import StepRecorder

log = get_logger(__name__)


@dataclass
class AttemptOutcome:
    trace: AttemptTrace
    answer: str | None = None
    usage: Usage | None = None
    model: str | None = None
    served_tier: str | None = None
    error: AgentqError | None = None
    stopped: str | None = None  # "cancelled" or "shutdown" when stopped from outside

    @property
    def succeeded(self) -> bool:
        return self.error is None


async def run_attempt(
    job: Job, token: str, attempt: int, settings: Settings, deadline: float
) -> AttemptOutcome:
    """Run one attempt within ``deadline`` seconds; stoppable through ``worker.inflight``."""
    clients = loop_clients(settings)
    shard = clients.next_shard()
    context = JobContext(job_id=job.id, attempt=attempt, excerpt_chars=settings.trace_excerpt_chars)
    CURRENT_JOB.set(context)
    inflight.add(context)
    started = time.time()
    answer: str | None = None
    error: AgentqError | None = None
    tier = job.service_tier or settings.service_tier
    try:
        async with asyncio.timeout(deadline) as budget:
            policy = ToolPolicy.for_job(settings, job.allow_writes)
            listing: Listing | None = None
            server = open_mcp_server(
                settings,
                token,
                context,
                limiter=clients.mcp_limiter,
                resendable=resendable_tools(policy, lambda: listing),
                pool=shard.mcp_pool,
            )
            async with server:
                session = context.mcp_session = server.session
                if session is None:  # connected servers have one; the type allows None
                    raise AgentqError(
                        "the MCP session did not open", code=ErrorCode.MCP_UNAVAILABLE
                    )
                # Nothing is spent, not even the prompt, on a token Infrahub has not accepted.
                await prove_token(session, token, clients.proofs, context)
                listed_at = time.time()
                listing, listed = await clients.tools.listing(session, settings.mcp_url)
                tools = clients.bridge.tools(listing, policy)
                context.steps.append(
                    Step(
                        kind="list_tools",
                        server=server.name,
                        started_at=listed_at,
                        duration_ms=(time.time() - listed_at) * 1000,
                        tools=[tool.name for tool in tools],
                        result_excerpt="(cached)" if listed else None,
                    )
                )
                prompt_started = time.time()
                instructions, cached = await clients.prompts.get(server, settings.prompt_name)
                context.steps.append(
                    Step(
                        kind="prompt",
                        name=settings.prompt_name,
                        server=server.name,
                        started_at=prompt_started,
                        duration_ms=(time.time() - prompt_started) * 1000,
                        result_bytes=len(instructions.encode()),
                        result_excerpt="(cached)" if cached else None,
                    )
                )
                agent = Agent[JobContext](
                    name="infrahub-agent",
                    instructions=instructions,
                    tools=list(tools),
                    model=shard.model(),
                    model_settings=ModelSettings(
                        extra_args=request_extras(settings, tier, instructions, listing)
                    ),
                    output_type=(
                        ItemsOutput(job.item_key)
                        if job.answer_format == "items" and job.item_key
                        else None
                    ),
                )
                result = await Runner.run(
                    agent,
                    job.question,
                    context=context,
                    max_turns=settings.max_turns,
                    hooks=StepRecorder(clients.model_name, clients.prices, tier),
                    # The steps are recorded directly (worker.tracing): no SDK trace is built.
                    run_config=RunConfig(workflow_name="agentq job", tracing_disabled=True),
                )
        if context.failure is not None:
            raise context.failure
        answer = str(result.final_output)
    except asyncio.CancelledError:
        if context.stop_reason is None:
            raise
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
        error = stopped_error(context.stop_reason)
    except Exception as exc:
        if budget.expired():
            error = AgentqError(
                f"the job ran past its deadline of {deadline:g}s",
                code=ErrorCode.TIMEOUT,
                transient=False,
            )
        else:
            error = classify(exc, context)
        log.warning(
            "attempt failed",
            error_code=error.code,
            error_message=error.message,
            transient=error.transient,
            cause=type(exc).__name__,
        )
    finally:
        inflight.remove(job.id)
    finished = time.time()
    # Every step in the order it began: token check, tools, prompt, then the run's calls.
    steps = sorted([*context.steps, *context.http_errors], key=lambda s: s.started_at or 0.0)
    if answer is not None:
        # Scrubbed before it is cut, like every excerpt (the whole outcome is scrubbed later).
        steps.append(Step(kind="final_output", started_at=finished, output=scrub(answer)[:2000]))
    trace = AttemptTrace(
        attempt=attempt,
        started_at=started,
        finished_at=finished,
        outcome="succeeded" if error is None else "failed",
        error_code=None if error is None else str(error.code),
        error_message=None if error is None else error.message,
        steps=steps,
        totals=Totals.of(steps, (finished - started) * 1000),
    )
    calls = [step for step in steps if step.kind == "model_call"]
    return AttemptOutcome(
        trace=trace,
        answer=answer,
        # What was spent, whether or not the attempt succeeded: one step per model response.
        usage=Usage.of(trace.totals) if calls else None,
        model=calls[-1].model if calls else clients.model_name,
        served_tier=calls[-1].service_tier if calls else None,
        error=error,
        stopped=context.stop_reason if error is not None else None,
    )


def request_extras(
    settings: Settings, tier: str | None, instructions: str, listing: Listing
) -> dict[str, Any]:
    """What every model request of the attempt adds to the SDK's parameters: the service tier
    asked, and a ``prompt_cache_key`` that is the same for every job of the deployment with
    the same prompt and tool list (the SDK would send a new key per run, which routes each run
    to a cache of its own), so the provider's prefix cache serves the instructions and tools
    that every job sends first."""
    extras: dict[str, Any] = {}
    if tier is not None:
        extras["service_tier"] = tier
    prefix = settings.prompt_cache_prefix
    if prefix is not None:
        version = hashlib.sha256(f"{listing.version}\n{instructions}".encode()).hexdigest()
        extras["prompt_cache_key"] = f"{prefix}-{version[:16]}"
    return extras


def stopped_error(reason: str) -> AgentqError:
    if reason == "shutdown":
        return AgentqError(
            "the worker shut down before the job finished; it was requeued",
            code=ErrorCode.INTERNAL,
        )
    return AgentqError("cancelled by its owner", code=ErrorCode.CANCELLED)
