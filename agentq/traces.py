"""The structured trace of a job: every MCP listing, model call and tool call, with timings.

A trace is kept apart from the job record (it can be large) and is versioned so that readers can
tell formats apart. Each attempt of a job has its own list of steps, so a retried job shows what
failed and what then worked.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field

TRACE_VERSION = 1

StepKind = Literal[
    "token_check", "prompt", "list_tools", "model_call", "tool_call", "http_error", "final_output"
]


class Step(BaseModel):
    """One thing the agent did. Fields that do not apply to a kind are left out when dumped."""

    kind: StepKind
    started_at: float | None = None
    duration_ms: float | None = None
    # model_call
    model: str | None = None  # the model that answered (a fallback, when the first failed)
    service_tier: str | None = None  # the tier that served it, as the provider said
    input_tokens: int | None = None
    cached_tokens: int | None = None  # of the input, served from the provider's prefix cache
    output_tokens: int | None = None
    reasoning_tokens: int | None = None  # of the output
    cost_usd: float | None = None  # None: the price table has no price for model and tier
    # list_tools / prompt / tool_call
    server: str | None = None
    tools: list[str] | None = None
    name: str | None = None
    tool: str | None = None
    arguments: Any = None
    result_bytes: int | None = None
    result_excerpt: str | None = None
    is_error: bool | None = None
    error: str | None = None
    # final_output
    output: str | None = None


class Totals(BaseModel):
    model_calls: int = 0
    tool_calls: int = 0
    tool_errors: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    # The dollars of every model call; None when any call had no price ("cost unknown").
    cost_usd: float | None = 0.0
    duration_ms: float = 0.0

    @classmethod
    def of(cls, steps: list[Step], duration_ms: float) -> Totals:
        model_calls = [s for s in steps if s.kind == "model_call"]
        tool_calls = [s for s in steps if s.kind == "tool_call"]
        return cls(
            model_calls=len(model_calls),
            tool_calls=len(tool_calls),
            tool_errors=sum(1 for s in tool_calls if s.is_error),
            input_tokens=sum(s.input_tokens or 0 for s in model_calls),
            cached_tokens=sum(s.cached_tokens or 0 for s in model_calls),
            output_tokens=sum(s.output_tokens or 0 for s in model_calls),
            reasoning_tokens=sum(s.reasoning_tokens or 0 for s in model_calls),
            cost_usd=add_costs(s.cost_usd for s in model_calls),
            duration_ms=duration_ms,
        )

    def add(self, other: Totals) -> Totals:
        return Totals(
            model_calls=self.model_calls + other.model_calls,
            tool_calls=self.tool_calls + other.tool_calls,
            tool_errors=self.tool_errors + other.tool_errors,
            input_tokens=self.input_tokens + other.input_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cost_usd=add_costs([self.cost_usd, other.cost_usd]),
            duration_ms=self.duration_ms + other.duration_ms,
        )


def add_costs(costs: Iterable[float | None]) -> float | None:
    """The sum of dollar amounts, or None ("cost unknown") when any of them is unknown: a total
    that left out the calls it could not price would look cheaper than it was."""
    total = 0.0
    for cost in costs:
        if cost is None:
            return None
        total += cost
    return total


class AttemptTrace(BaseModel):
    attempt: int
    started_at: float
    finished_at: float
    outcome: Literal["succeeded", "failed", "retrying", "cancelled", "requeued"]
    error_code: str | None = None
    error_message: str | None = None
    steps: list[Step] = Field(default_factory=list)
    totals: Totals = Field(default_factory=Totals)


class Trace(BaseModel):
    version: int = TRACE_VERSION
    job_id: str
    attempts: list[AttemptTrace] = Field(default_factory=list)

    @property
    def totals(self) -> Totals:
        total = Totals()
        for attempt in self.attempts:
            total = total.add(attempt.totals)
        return total

    def to_json_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude_none=True)
        data["totals"] = self.totals.model_dump(mode="json")
        return data
