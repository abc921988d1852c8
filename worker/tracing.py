"""An attempt's trace steps, recorded as they happen, with the Agents SDK's own tracing off.

The SDK's tracing builds a trace and a span per model and tool call, timestamps them as ISO
strings, serializes each model call's settings, and by default uploads it all to OpenAI. Turned
off, a job cost about 5 ms less CPU (agentq's worker, 50 in flight, measured side by side), and
nothing can leave the machine. What the trace needs is recorded directly instead, where it is
known: each model call by the SDK's public run hooks (``StepRecorder``), each tool call by the
tool bridge (``worker.tool_bridge``), which sees its arguments, result and failure first hand.
Both append to the attempt's ``JobContext.steps``; the trace is built once, at the end.
"""

from __future__ import annotations

import json
import time
from typing import Any

from agents import Agent, ModelResponse, RunContextWrapper, RunHooks, TResponseInputItem

from agentq.logs import scrubbed_excerpt
from agentq.prices import PriceTable
from agentq.traces import Step
from worker.failures import JobContext


class StepRecorder(RunHooks[JobContext]):
    """Run hooks that record one ``model_call`` step per model response, timed from its request,
    with what it used and cost (``agentq.prices``) at the tier that served it. A run's model
    calls are sequential, so one pending start per attempt is enough."""

    def __init__(self, model: str, prices: PriceTable, tier: str | None = None) -> None:
        self._model = model
        self._prices = prices
        self._tier = tier  # asked: the price when the provider does not say what served it

    async def on_llm_start(
        self,
        context: RunContextWrapper[JobContext],
        agent: Agent[JobContext],
        system_prompt: str | None,
        input_items: list[TResponseInputItem],
    ) -> None:
        context.context.model_started = time.time()
        context.context.served_tier = None

    async def on_llm_end(
        self,
        context: RunContextWrapper[JobContext],
        agent: Agent[JobContext],
        response: ModelResponse,
    ) -> None:
        job = context.context
        ended = time.time()
        started = job.model_started or ended
        job.model_started = None
        usage = response.usage
        model = job.model or self._model
        tier = job.served_tier or self._tier
        cached = usage.input_tokens_details.cached_tokens or 0
        job.steps.append(
            Step(
                kind="model_call",
                model=model,
                service_tier=job.served_tier,
                started_at=started,
                duration_ms=(ended - started) * 1000,
                input_tokens=usage.input_tokens,
                cached_tokens=cached,
                output_tokens=usage.output_tokens,
                reasoning_tokens=usage.output_tokens_details.reasoning_tokens or 0,
                cost_usd=self._prices.cost(
                    model, tier, usage.input_tokens, cached, usage.output_tokens
                ),
            )
        )


def tool_step(
    job: JobContext,
    tool: str,
    server: str,
    arguments: Any,
    started: float,
    output: str,
    error: str | None,
) -> None:
    """Record one tool call: what was asked, an excerpt of what came back (scrubbed before it is
    cut, so no credential survives whole or in part), and whether it failed."""
    job.steps.append(
        Step(
            kind="tool_call",
            tool=tool,
            server=server,
            arguments=arguments,
            started_at=started,
            duration_ms=(time.time() - started) * 1000,
            result_bytes=len(output.encode()),
            result_excerpt=scrubbed_excerpt(output, job.excerpt_chars),
            is_error=error is not None,
            error=error,
        )
    )


def tool_output_text(output: Any) -> str:
    """The text a tool returned, whether it is a str, a content dict or a list of them."""
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    if isinstance(output, dict):
        text = output.get("text")
        return text if isinstance(text, str) else json.dumps(output, default=str)
    if isinstance(output, list):
        return "\n".join(tool_output_text(item) for item in output)
    return str(output)
