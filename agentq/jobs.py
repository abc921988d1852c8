"""The job record: what a user asked, who asked, and what became of it."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from agentq.answers import AnswerFormat, Item, parse_items
from agentq.traces import Totals, add_costs

# The provider's service tiers (``service_tier``): ``flex`` costs about half and may be refused
# when capacity is short; ``auto`` lets the provider choose.
ServiceTier = Literal["auto", "default", "flex", "priority"]
SERVICE_TIERS: tuple[str, ...] = ("auto", "default", "flex", "priority")


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
_JOB_ID = re.compile(r"[0-9a-f]{32}")


def is_job_id(value: str) -> bool:
    """Whether ``value`` has the shape of an id ``Job.new_id`` makes: anything else is refused
    before it becomes part of a Redis key (``x:trace`` would name another kind of key)."""
    return _JOB_ID.fullmatch(value) is not None


class Usage(BaseModel):
    """What a job's model calls used and cost, over all of its attempts (a failed attempt's
    calls were paid for too). ``cost_usd`` is None when any call had no price in the table
    (``agentq.prices``): "cost unknown", never a partial sum."""

    requests: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0  # of the input, served from the provider's prefix cache
    output_tokens: int = 0
    reasoning_tokens: int = 0  # of the output
    total_tokens: int = 0
    cost_usd: float | None = 0.0

    @classmethod
    def of(cls, totals: Totals) -> Usage:
        """An attempt's usage, from its trace's totals (one model call step per request)."""
        return cls(
            requests=totals.model_calls,
            input_tokens=totals.input_tokens,
            cached_tokens=totals.cached_tokens,
            output_tokens=totals.output_tokens,
            reasoning_tokens=totals.reasoning_tokens,
            total_tokens=totals.input_tokens + totals.output_tokens,
            cost_usd=totals.cost_usd,
        )

    @classmethod
    def total(cls, usages: Iterable[Usage | None]) -> Usage | None:
        """The sum of attempts' usage (None when no attempt recorded any)."""
        known = [u for u in usages if u is not None]
        if not known:
            return None
        return cls(
            requests=sum(u.requests for u in known),
            input_tokens=sum(u.input_tokens for u in known),
            cached_tokens=sum(u.cached_tokens for u in known),
            output_tokens=sum(u.output_tokens for u in known),
            reasoning_tokens=sum(u.reasoning_tokens for u in known),
            total_tokens=sum(u.total_tokens for u in known),
            cost_usd=add_costs(u.cost_usd for u in known),
        )


class JobError(BaseModel):
    code: str
    message: str


class AttemptSummary(BaseModel):
    """How one attempt went; the job keeps one per attempt (its trace has the details)."""

    attempt: int
    started_at: float
    finished_at: float
    outcome: str  # succeeded | failed | retrying | cancelled | requeued
    error_code: str | None = None
    error_message: str | None = None
    retry_in_seconds: float | None = None
    usage: Usage | None = None  # what this attempt's model calls used and cost
    model: str | None = None  # the model that answered last (a fallback's, if one was used)
    service_tier: str | None = None  # the tier that served its last model call


class Job(BaseModel):
    """One question run as one agent job.

    ``owner`` is the keyed fingerprint of the submitter's token (see ``agentq.sealing``), never the
    token itself.
    """

    id: str
    status: JobStatus
    question: str
    owner: str
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    answer: str | None = None
    usage: Usage | None = None
    error: JobError | None = None
    model: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    deadline_seconds: float | None = None
    queue: str | None = None  # the Celery queue its messages go to (retries go back there)
    worker: str | None = None
    next_attempt_at: float | None = None
    lost_runs: int = 0
    tool_calls: int = 0  # over all attempts
    history: list[AttemptSummary] = Field(default_factory=list)
    # Admission (see ``agentq.dispatch``): the lane it waits in, and its batch if it has one.
    lane: str | None = None
    batch_id: str | None = None
    allow_writes: bool = False
    webhook_url: str | None = None  # gets a signed POST when the job ends
    # The answer's shape (``agentq.answers``): with "items", ``answer`` holds the validated
    # ``{"items": [...]}`` JSON and ``items`` reads it.
    answer_format: AnswerFormat = "text"
    item_key: str | None = None
    question_id: str | None = None  # matches the question across a report's runs
    # The tier asked of the model (None: the deployment's AGENTQ_SERVICE_TIER), and the tier
    # that served its last call (flex falls back to default when flex has no capacity).
    service_tier: ServiceTier | None = None
    served_tier: str | None = None
    # Its batch has a dollar budget (``agentq.spend``): only then is the batch read before it runs.
    budgeted: bool = False

    @property
    def cost_usd(self) -> float | None:
        """What its model calls cost over all attempts (None: unknown); 0 before any ran."""
        return 0.0 if self.usage is None else self.usage.cost_usd

    @property
    def items(self) -> list[Item] | None:
        if self.answer_format != "items" or self.answer is None or self.item_key is None:
            return None
        try:
            return parse_items(self.answer, self.item_key)
        except ValueError:  # a record written before the answer was checked: show no items
            return None

    @classmethod
    def new(
        cls,
        question: str,
        owner: str,
        metadata: dict[str, Any] | None = None,
        deadline_seconds: float | None = None,
        queue: str | None = None,
        batch_id: str | None = None,
        allow_writes: bool = False,
        webhook_url: str | None = None,
        answer_format: AnswerFormat = "text",
        item_key: str | None = None,
        question_id: str | None = None,
        service_tier: ServiceTier | None = None,
        budgeted: bool = False,
    ) -> Job:
        return cls(
            id=cls.new_id(),
            status=JobStatus.QUEUED,
            question=question,
            owner=owner,
            created_at=time.time(),
            metadata=metadata or {},
            deadline_seconds=deadline_seconds,
            queue=queue,
            lane=owner if batch_id is None else f"{owner}:{batch_id}",
            batch_id=batch_id,
            allow_writes=allow_writes,
            webhook_url=webhook_url,
            answer_format=answer_format,
            item_key=item_key,
            question_id=question_id,
            service_tier=service_tier,
            budgeted=budgeted,
        )

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    @property
    def queued_seconds(self) -> float | None:
        return None if self.started_at is None else self.started_at - self.created_at

    @property
    def run_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    def public(self) -> dict[str, Any]:
        """What a reader of the job sees (no owner fingerprint)."""
        data = self.model_dump(
            mode="json", exclude={"owner", "worker", "queue", "lane", "budgeted"}
        )
        if self.answer_format == "items":
            data["items"] = self.items
        data["cost_usd"] = self.cost_usd
        data["timings"] = {
            "queued_seconds": self.queued_seconds,
            "run_seconds": self.run_seconds,
        }
        return data
