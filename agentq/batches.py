"""Batches: many questions submitted at once, counted as they run, reported as one.

A batch is a Redis hash holding its description and one counter per job status. The counters move
inside the same Lua scripts that move each job's status (``agentq.store``), so reading a batch's
progress costs one HGETALL whatever its size, and the counters can never drift from the jobs.
The job that ends last puts the batch in ``agentq:batches:ended``; a worker's maintenance tick then
writes the batch's report (kept after the job records expire) and sends its webhook.

A batch's jobs wait in the batch's own lane, so ``max_inflight`` caps how many of them run at once
while the rest wait their turn (``agentq.dispatch``).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import redis
from pydantic import BaseModel, Field
from redis.client import Pipeline

from agentq.answers import AnswerFormat
from agentq.connections import redis_errors
from agentq.jobs import JobStatus
from agentq.reports import BatchReport, ReportRow
from agentq.store import KEY_PREFIX, OWNER_INDEX_SIZE, JobStore, newest_members

ENDED_KEY = f"{KEY_PREFIX}:batches:ended"  # zset: batch id -> when its last job ended
STATUS_FIELDS = tuple(str(s) for s in JobStatus)
NotifyWhen = Literal["always", "changed", "failed"]
_BATCH_ID = re.compile(r"b[0-9a-f]{32}")


def is_batch_id(value: str) -> bool:
    """Whether ``value`` has the shape of an id ``Batch.new_id`` makes (``<id>:jobs`` names the
    batch's job list, not the batch: it must never reach a key)."""
    return _BATCH_ID.fullmatch(value) is not None


def batch_key(batch_id: str) -> str:
    return f"{KEY_PREFIX}:batch:{batch_id}"


def batch_jobs_key(batch_id: str) -> str:
    return f"{KEY_PREFIX}:batch:{batch_id}:jobs"


def report_key(batch_id: str) -> str:
    return f"{KEY_PREFIX}:report:{batch_id}"


def batch_shared_key(batch_id: str) -> str:
    """Hash: row number -> the row (question, metadata, id) of a question asked once for rows
    that repeat it (``agentq.batches.SharedRow``)."""
    return f"{KEY_PREFIX}:batch:{batch_id}:shared"


def owner_batches_key(owner: str) -> str:
    return f"{KEY_PREFIX}:owner:{owner}:batches"


@dataclass(frozen=True)
class BatchItem:
    """One question of a batch, with its own metadata and (in a scheduled report) the id that
    matches it across runs when its text changes."""

    question: str
    metadata: dict[str, Any] | None = None
    id: str | None = None

    @classmethod
    def of(cls, item: str | BatchItem) -> BatchItem:
        return item if isinstance(item, BatchItem) else cls(question=item)


class SharedRow(BaseModel):
    """A row whose question repeats row ``shared_with``'s (after trimming whitespace): it is
    asked once, and this row keeps its own metadata and id."""

    shared_with: int
    question: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    question_id: str | None = None


class BatchStatus(StrEnum):
    RUNNING = "running"  # some jobs have not ended
    SUCCEEDED = "succeeded"  # every job succeeded
    COMPLETED_WITH_FAILURES = "completed_with_failures"  # ended; some failed
    FAILED = "failed"  # ended; none succeeded
    CANCELLED = "cancelled"  # its owner cancelled it


class Batch(BaseModel):
    """A batch as its owner sees it (``owner`` is the fingerprint, never the token)."""

    id: str
    owner: str
    name: str | None = None
    total: int
    counts: dict[str, int] = Field(default_factory=dict)
    created_at: float
    finished_at: float | None = None
    cancelled: bool = False
    max_inflight: int
    webhook_url: str | None = None
    schedule: str | None = None  # the scheduled report that made it, if any
    metadata: dict[str, Any] = Field(default_factory=dict)
    # When its webhook is sent (a scheduled report's ``notify.when``): always (the default),
    # changed (only if the run's changes since the previous run are not empty), failed.
    notify_when: NotifyWhen = "always"
    answer_format: AnswerFormat = "text"
    item_key: str | None = None
    # Dollars: the most its jobs may spend (None: no budget), and what they have spent so far
    # (None: unknown, some attempt's model had no price; see ``agentq.spend``).
    max_cost_usd: float | None = None
    cost_usd: float | None = 0.0
    service_tier: str | None = None  # asked of the model for each of its jobs
    # Rows that repeat an earlier row's question and share its job (``total`` counts jobs;
    # ``questions`` counts rows).
    shared: int = 0
    # A scheduled run's changes since the previous run, in short (``RunChanges.summary``): kept
    # with the batch when its report is written, so its webhook need not read the report.
    changes: dict[str, Any] | None = None

    def notify_due(self, report: BatchReport) -> bool:
        """Whether this batch's ended ``report`` calls for its webhook."""
        if self.notify_when == "changed":
            return report.changes is not None and report.changes.changed
        if self.notify_when == "failed":
            return self.status != BatchStatus.SUCCEEDED
        return True

    @property
    def questions(self) -> int:
        return self.total + self.shared

    @property
    def ended(self) -> int:
        return sum(self.counts.get(s, 0) for s in ("succeeded", "failed", "cancelled"))

    @property
    def status(self) -> BatchStatus:
        if self.cancelled:
            return BatchStatus.CANCELLED
        if self.ended < self.total:
            return BatchStatus.RUNNING
        succeeded = self.counts.get("succeeded", 0)
        if succeeded == self.total:
            return BatchStatus.SUCCEEDED
        return BatchStatus.FAILED if succeeded == 0 else BatchStatus.COMPLETED_WITH_FAILURES

    def public(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude={"owner"})
        data["status"] = str(self.status)
        data["counts"] = {s: self.counts.get(s, 0) for s in STATUS_FIELDS}
        data["questions"] = self.questions
        return data

    @staticmethod
    def new_id() -> str:
        return "b" + uuid.uuid4().hex


class BatchStore:
    """Batch records, their job lists and their reports; every key expires after ``ttl``."""

    def __init__(self, client: redis.Redis, ttl: int, url: str = "redis") -> None:
        self._redis = client
        self._ttl = ttl
        self._url = url

    def add_to(
        self,
        pipe: Pipeline,
        batch: Batch,
        job_ids: Sequence[str],
        shared: dict[int, SharedRow] | None = None,
    ) -> None:
        """Write ``batch`` (all of its jobs queued) as part of the transaction creating them.
        ``job_ids`` has one id per row, in order: a row that repeats an earlier question has
        that question's job, and its own question, metadata and id in ``shared``."""
        fields: dict[str, Any] = {
            "id": batch.id,
            "owner": batch.owner,
            "total": batch.total,
            "created_at": repr(batch.created_at),
            "max_inflight": batch.max_inflight,
            "queued": batch.total,
            "metadata": json.dumps(batch.metadata),
        }
        optional = (
            "name", "webhook_url", "schedule", "notify_when", "answer_format", "item_key",
            "max_cost_usd", "service_tier", "shared",
        )  # fmt: skip
        for name in optional:
            value = getattr(batch, name)
            if value is not None:
                fields[name] = value
        pipe.hset(batch_key(batch.id), mapping=fields)  # type: ignore[arg-type]
        pipe.expire(batch_key(batch.id), self._ttl)
        for start in range(0, len(job_ids), 5000):
            pipe.rpush(batch_jobs_key(batch.id), *job_ids[start : start + 5000])
        pipe.expire(batch_jobs_key(batch.id), self._ttl)
        if shared:
            rows = {str(row): item.model_dump_json() for row, item in shared.items()}
            pipe.hset(batch_shared_key(batch.id), mapping=rows)  # type: ignore[arg-type]
            pipe.expire(batch_shared_key(batch.id), self._ttl)
        owned = owner_batches_key(batch.owner)
        pipe.zadd(owned, {batch.id: batch.created_at})
        pipe.zremrangebyrank(owned, 0, -OWNER_INDEX_SIZE - 1)
        pipe.expire(owned, self._ttl)

    def owner(self, batch_id: str) -> str | None:
        """The batch's owner fingerprint (one HGET: ownership is checked before the record is
        read, so another owner's batch costs what a missing one does)."""
        return self.owners([batch_id])[0]

    def owners(self, batch_ids: Sequence[str]) -> list[str | None]:
        """Each batch's owner fingerprint (None if it does not exist), in one round trip."""
        with redis_errors(self._url):
            pipe = self._redis.pipeline(transaction=False)
            for batch_id in batch_ids:
                pipe.hget(batch_key(batch_id), "owner")
            values = pipe.execute()
        return [str(v) if v is not None else None for v in values]

    def load(self, batch_id: str) -> Batch | None:
        with redis_errors(self._url):
            raw = self._redis.hgetall(batch_key(batch_id))
        if not raw:
            return None
        data: dict[str, Any] = {str(k): v for k, v in raw.items()}
        return Batch(
            id=data["id"],
            owner=data["owner"],
            name=data.get("name"),
            total=int(data["total"]),
            counts={s: int(data.get(s, 0)) for s in STATUS_FIELDS},
            created_at=float(data["created_at"]),
            finished_at=float(data["finished_at"]) if data.get("finished_at") else None,
            cancelled=data.get("cancel_requested") == "1",
            max_inflight=int(data["max_inflight"]),
            webhook_url=data.get("webhook_url"),
            schedule=data.get("schedule"),
            metadata=json.loads(data.get("metadata") or "{}"),
            notify_when=data.get("notify_when") or "always",
            answer_format=data.get("answer_format") or "text",
            item_key=data.get("item_key"),
            max_cost_usd=float(data["max_cost_usd"]) if data.get("max_cost_usd") else None,
            cost_usd=(None if data.get("unpriced_attempts") else float(data.get("cost_usd") or 0)),
            service_tier=data.get("service_tier"),
            shared=int(data.get("shared") or 0),
            changes=json.loads(data["changes"]) if data.get("changes") else None,
        )

    def job_ids(self, batch_id: str, chunk: int = 1000) -> Iterator[list[str]]:
        """The batch's job ids in submission order, ``chunk`` at a time."""
        start = 0
        while True:
            with redis_errors(self._url):
                ids = self._redis.lrange(batch_jobs_key(batch_id), start, start + chunk - 1)
            if not ids:
                return
            yield [str(i) for i in ids]
            start += chunk

    def mark_cancelled(self, batch_id: str) -> None:
        with redis_errors(self._url):
            self._redis.hset(batch_key(batch_id), "cancel_requested", "1")

    def owned(self, owners: Sequence[str], limit: int) -> list[str]:
        """The newest ``limit`` batch ids of an owner, newest first, over its fingerprints
        under every configured key (as ``JobStore.owned_ids``)."""
        with redis_errors(self._url):
            return newest_members(
                self._redis, [owner_batches_key(owner) for owner in owners], limit
            )

    # Ended batches and their reports ------------------------------------------------------

    def ended(self, limit: int = 10) -> list[str]:
        with redis_errors(self._url):
            ids = self._redis.zrange(ENDED_KEY, 0, limit - 1)
        return [str(i) for i in ids]

    def lock_report(self, batch_id: str, seconds: int = 300) -> bool:
        """Take the right to write a batch's report (one worker does it, again if it died)."""
        with redis_errors(self._url):
            taken = self._redis.set(f"{KEY_PREFIX}:reporting:{batch_id}", "1", nx=True, ex=seconds)
        return bool(taken)

    def save_report(
        self, batch_id: str, report_json: str, changes: dict[str, Any] | None = None
    ) -> None:
        """Keep the ended batch's report (and, for a scheduled run, its changes in short)."""
        with redis_errors(self._url):
            pipe = self._redis.pipeline(transaction=True)
            pipe.set(report_key(batch_id), report_json, ex=self._ttl)
            if changes is not None:
                pipe.hset(batch_key(batch_id), "changes", json.dumps(changes))
            pipe.zrem(ENDED_KEY, batch_id)
            pipe.execute()

    def shared_rows(self, batch_id: str) -> dict[int, SharedRow]:
        """The rows that share an earlier row's job, by row number (see ``add_to``)."""
        with redis_errors(self._url):
            raw = self._redis.hgetall(batch_shared_key(batch_id))
        return {int(k): SharedRow.model_validate_json(v) for k, v in raw.items()}

    def load_report(self, batch_id: str) -> str | None:
        with redis_errors(self._url):
            raw = self._redis.get(report_key(batch_id))
        return str(raw) if raw is not None else None

    def forget_ended(self, batch_id: str) -> None:
        with redis_errors(self._url):
            self._redis.zrem(ENDED_KEY, batch_id)


def build_report(batch: Batch, store: JobStore, batches: BatchStore) -> BatchReport:
    """The batch's report from its job records (final once every job has ended)."""
    rows: list[ReportRow] = []
    shared = batches.shared_rows(batch.id) if batch.shared else {}
    for ids in batches.job_ids(batch.id):
        for job_id, job in zip(ids, store.load_many(ids), strict=True):
            row = ReportRow.of(len(rows) + 1, job_id, job)
            repeat = shared.get(row.index)
            if repeat is not None:
                row = row.model_copy(
                    update={
                        "question": repeat.question,
                        "metadata": repeat.metadata,
                        "question_id": repeat.question_id,
                        "shared_with": repeat.shared_with,
                    }
                )
            rows.append(row)
    return BatchReport(
        batch_id=batch.id,
        name=batch.name,
        schedule=batch.schedule,
        status=str(batch.status),
        created_at=batch.created_at,
        finished_at=batch.finished_at,
        total=batch.questions,
        counts={s: batch.counts.get(s, 0) for s in STATUS_FIELDS},
        final=batch.ended >= batch.total,
        rows=rows,
        data_read_at=batch.created_at,
        max_cost_usd=batch.max_cost_usd,
    )
