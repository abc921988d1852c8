"""The job store: job records and traces in Redis, with a retention TTL.

A job is a Redis hash written as ``queued``, in the same transaction that puts it in its dispatch
lane (``agentq.dispatch``), so a job a worker takes always exists and no job is written without
being queued. Status changes go through Lua scripts (``agentq/lua/store_*.lua``) that only
apply a change from an allowed status: a redelivered or late message can never move a finished
job back to ``running`` or finish it twice. What every status change also does (slots, quotas,
batch counters, webhooks) is one Lua function they share, ``store_job_moved.lua``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.client import Pipeline

from agentq import lua
from agentq.connections import redis_errors
from agentq.durability import DurableWrites
from agentq.errors import AgentqError, JobNotFound
from agentq.jobs import TERMINAL_STATUSES, AttemptSummary, Job, JobError, JobStatus, Usage
from agentq.sealing import SealBinding, TokenSealer
from agentq.settings import Settings
from agentq.traces import AttemptTrace, Trace

KEY_PREFIX = "agentq"
RUNNING_KEY = f"{KEY_PREFIX}:running"  # zset: job id -> when its current attempt started
DELAYED_KEY = f"{KEY_PREFIX}:delayed"  # zset: job id -> when its next attempt is due
NOTIFY_KEY = f"{KEY_PREFIX}:notify"  # zset: ended job id with a webhook -> when it ended
SENT_KEY = f"{KEY_PREFIX}:sent"  # zset: queued job id -> when its message was last sent
OWNER_PREFIX = f"{KEY_PREFIX}:owner:"  # + owner fingerprint: zset of its job ids by creation
SEALED_PREFIX = f"{KEY_PREFIX}:sealed:"  # + job id: its sealed token, while it has not ended
OWNER_INDEX_SIZE = 10_000  # newest job ids kept in an owner's index
WORKER_PREFIX = f"{KEY_PREFIX}:worker:"  # + worker name: heartbeat, expires when it dies
EPOCH_KEY = f"{KEY_PREFIX}:epoch"  # hash: the run id of the Redis server agentq last saw
CANCELS_KEY = f"{KEY_PREFIX}:cancels"  # counter: cancel requests ever made (JobStore.cancels)
SETTLE_KEY = f"{KEY_PREFIX}:settle"  # exists while claims wait after a restart (server_epoch.lua)
TERMINAL = ",".join(TERMINAL_STATUSES)
# After Redis restarts or fails over, how long claims of queued jobs wait while the workers put
# back the jobs they run (see agentq/lua/server_epoch.lua): above two housekeeping ticks.
SETTLE_SECONDS = 3.0

POISONED_ERROR = JobError(
    code="poisoned",
    message="the job's runs were lost too often (its worker died each time); not retried",
)

_JSON_FIELDS = ("usage", "error", "metadata", "history")


@dataclass
class ResealCounts:
    """What ``JobStore.reseal_waiting`` did: tokens sealed again under the newest key (of which
    ``moved`` also got the newest key's owner fingerprint), tokens it could not open or that
    were not sealed for their job (left as they are: their job fails ``auth_error`` when it
    runs), and tokens of jobs that had already ended (deleted)."""

    resealed: int = 0
    moved: int = 0
    unreadable: int = 0
    dropped: int = 0


def newest_members(client: redis.Redis, keys: Sequence[str], limit: int) -> list[str]:
    """The newest ``limit`` members over the zsets ``keys`` (scored by time), newest first,
    each once: an owner's index under each key fingerprint, merged."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.zrevrange(key, 0, max(0, limit - 1), withscores=True)
    scored: dict[str, float] = {}
    for entries in pipe.execute():
        for member, score in entries:
            scored[str(member)] = max(float(score), scored.get(str(member), float("-inf")))
    return sorted(scored, key=lambda member: scored[member], reverse=True)[:limit]


class JobStore:
    """Reads and writes job records and traces; every key expires after ``ttl`` seconds."""

    def __init__(
        self,
        client: redis.Redis,
        ttl: int,
        url: str = "redis",
        durable: DurableWrites | None = None,
    ) -> None:
        self._redis = client
        self._ttl = ttl
        self._url = url
        # Confirms the writes that answer a user (see agentq.durability); None: never waits.
        self._durable = durable
        self._transition = lua.register(client, "store_transition")
        self._claim = lua.register(client, "store_claim")
        self._requeue = lua.register(client, "store_requeue")
        self._pop_due = lua.register(client, "store_pop_due")
        self._reseal = lua.register(client, "store_reseal")
        self._epoch = lua.register(client, "store_epoch")
        self._reassert = lua.register(client, "store_reassert")

    @classmethod
    def for_settings(cls, client: redis.Redis, settings: Settings) -> JobStore:
        durable = DurableWrites(
            client,
            settings.durable_writes,
            settings.durable_write_timeout_seconds,
            settings.redis_url,
        )
        return cls(client, settings.job_ttl_seconds, settings.redis_url, durable)

    @property
    def redis(self) -> redis.Redis:
        return self._redis

    def durable_plan(self) -> str:
        """How the writes that answer users are made durable here (``agentq.durability``)."""
        return "off" if self._durable is None else self._durable.plan()

    def check_durable(self) -> None:
        """Before a write that answers a user: refuse it if it cannot be made durable."""
        if self._durable is not None:
            self._durable.check()

    def confirm_durable(self) -> None:
        """After such a write: wait until it is on disk (see ``agentq.durability``)."""
        if self._durable is not None:
            self._durable.confirm()

    @staticmethod
    def job_key(job_id: str) -> str:
        return f"{KEY_PREFIX}:job:{job_id}"

    @staticmethod
    def trace_key(job_id: str) -> str:
        return f"{KEY_PREFIX}:trace:{job_id}"

    @staticmethod
    def sealed_key(job_id: str) -> str:
        return SEALED_PREFIX + job_id

    def _keys(self, job_id: str) -> list[str]:
        return [self.job_key(job_id), RUNNING_KEY, DELAYED_KEY, self.sealed_key(job_id), SENT_KEY]

    # Writing -----------------------------------------------------------------------------

    def create(
        self,
        jobs: Sequence[Job],
        sealed_tokens: list[str],
        enqueue: Callable[[Pipeline], None] | None = None,
        also: Callable[[Pipeline], int] | None = None,
    ) -> Any:
        """Write new jobs of one owner, each with its own sealed token (bound to it, see
        ``agentq.sealing``; kept so a lost or retried run can be resent), in one transaction
        with ``enqueue`` (which queues them for dispatch): all of it is written or none of it.

        ``also`` queues one more command after them (the dispatch of what may start now) and
        says where its answer is, which is returned: the answer, or the error it met (it does
        not undo the jobs' writes, which applied)."""
        self.check_durable()
        with redis_errors(self._url):
            pipe = self._redis.pipeline(transaction=True)
            for job, sealed in zip(jobs, sealed_tokens, strict=True):
                pipe.hset(self.job_key(job.id), mapping=_to_hash(job))  # type: ignore[arg-type]
                pipe.expire(self.job_key(job.id), self._ttl)
                pipe.set(self.sealed_key(job.id), sealed, ex=self._ttl)
            if jobs:
                owner_key = OWNER_PREFIX + jobs[0].owner
                pipe.zadd(owner_key, {job.id: job.created_at for job in jobs})
                pipe.zremrangebyrank(owner_key, 0, -OWNER_INDEX_SIZE - 1)
                pipe.expire(owner_key, self._ttl)
            if enqueue is not None:
                enqueue(pipe)
            extra = also(pipe) if also is not None else None
            results = pipe.execute(raise_on_error=False)
            for position, result in enumerate(results):
                if isinstance(result, Exception) and position != extra:
                    raise result
        self.confirm_durable()
        return results[extra] if extra is not None else None

    def owned_ids(self, owners: Sequence[str], limit: int) -> list[str]:
        """The newest ``limit`` job ids of an owner, newest first, over its fingerprints under
        every configured key (``TokenSealer.fingerprints``): during a key rotation its older
        jobs are indexed under the older key's fingerprint."""
        with redis_errors(self._url):
            return newest_members(self._redis, [OWNER_PREFIX + owner for owner in owners], limit)

    def load_many(self, job_ids: Sequence[str]) -> list[Job | None]:
        with redis_errors(self._url):
            pipe = self._redis.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.hgetall(self.job_key(job_id))
            raws = pipe.execute()
        return [_from_hash(raw) if raw else None for raw in raws]

    def delete(self, job_id: str) -> None:
        with redis_errors(self._url):
            self._redis.delete(
                self.job_key(job_id), self.trace_key(job_id), self.sealed_key(job_id)
            )

    def sealed_token(self, job_id: str) -> str | None:
        with redis_errors(self._url):
            value = self._redis.get(self.sealed_key(job_id))
        return str(value) if value is not None else None

    def reseal_waiting(self, sealer: TokenSealer) -> ResealCounts:
        """Move every job that has not ended to the newest key, so the older keys can be
        dropped without stranding it: its sealed token is sealed again under the newest key
        (keeping the time it was first sealed) and re-bound to the owner fingerprint under the
        newest key, which replaces the job's owner (and its batch's) in the record and in the
        owner indexes. A token that does not open, is in the unbound v1 format or was not sealed
        for its job is left as it is (counted unreadable). Sealed tokens of ended jobs are
        deleted."""
        counts = ResealCounts()
        with redis_errors(self._url):
            for key in self._redis.scan_iter(match=SEALED_PREFIX + "*", count=500):
                job_id = str(key).removeprefix(SEALED_PREFIX)
                value = self._redis.get(key)
                if value is None:
                    continue
                sealed, job = str(value), self.load(job_id)
                if job is None or job.status.terminal:
                    # Only if still so: the script deletes the token of a job that has ended.
                    result = self._reseal(
                        keys=[self.job_key(job_id), key],
                        args=[sealed, "", "", "", job_id, f"{KEY_PREFIX}:", self._ttl],
                    )
                else:
                    try:
                        token, bound = sealer.open(sealed)
                        sealer.check_binding(token, bound, SealBinding.of(job))
                    except AgentqError:
                        counts.unreadable += 1
                        continue
                    owner = sealer.fingerprint(token)
                    fresh = sealer.rebind(sealed, token, SealBinding.of(job).with_owner(owner))
                    result = self._reseal(
                        keys=[self.job_key(job_id), key],
                        args=[
                            sealed, fresh, job.owner, owner, job_id, f"{KEY_PREFIX}:", self._ttl,
                        ],
                    )  # fmt: skip
                if result in ("resealed", "moved"):
                    counts.resealed += 1
                    counts.moved += result == "moved"
                elif result == "dropped":
                    counts.dropped += 1
        return counts

    def claim(self, job_id: str, worker: str, poison_after: int) -> str:
        """Take the job for a run: 'claimed', or why not ('missing', 'terminal', 'busy',
        'early', 'poisoned', 'settling'), or 'mine' (it runs, claimed by this worker name)."""
        return self._claim_job(job_id, worker, poison_after, load=False)[0]

    def claim_and_load(
        self, job_id: str, worker: str, poison_after: int
    ) -> tuple[str, Job | None, str | None]:
        """``claim``, and in the same round trip the claimed job and its sealed token."""
        return self._claim_job(job_id, worker, poison_after, load=True)

    def _claim_job(
        self, job_id: str, worker: str, poison_after: int, load: bool
    ) -> tuple[str, Job | None, str | None]:
        with redis_errors(self._url):
            result = self._claim(
                keys=[
                    self.job_key(job_id), RUNNING_KEY, DELAYED_KEY, SENT_KEY,
                    self.sealed_key(job_id), EPOCH_KEY, SETTLE_KEY,
                ],
                args=[
                    self._ttl, worker, WORKER_PREFIX, repr(time.time()), poison_after, job_id,
                    POISONED_ERROR.model_dump_json(), "1" if load else "0",
                    int(SETTLE_SECONDS * 1000),
                ],
            )  # fmt: skip
        if not isinstance(result, list):
            return str(result), None, None
        flat = result[1]
        raw = {str(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}
        sealed = result[2]
        return str(result[0]), _from_hash(raw), str(sealed) if sealed is not None else None

    def requeue(
        self,
        job_id: str,
        delay: float,
        *,
        owner: str = "",
        lost: bool = False,
        poison_after: int = 1_000_000,
    ) -> str:
        """Queue a running job for another attempt after ``delay`` seconds: 'queued',
        'poisoned' (its runs were lost too often) or 'skipped' (not running, or not ``owner``'s).
        """
        now = time.time()
        with redis_errors(self._url):
            result = self._requeue(
                keys=self._keys(job_id)[:3],
                args=[
                    self._ttl, owner, repr(now + max(0.0, delay)), job_id, "1" if lost else "0",
                    poison_after, repr(now), POISONED_ERROR.model_dump_json(),
                ],
            )  # fmt: skip
        return str(result)

    def pop_due(self, limit: int = 100) -> list[str]:
        """Job ids whose retry is due now, each handed out once."""
        with redis_errors(self._url):
            due = self._pop_due(keys=[DELAYED_KEY, SENT_KEY], args=[repr(time.time()), limit])
        return [str(job_id) for job_id in due]

    def mark_sent(self, job_id: str) -> None:
        """Note that a message for this queued job was just sent (see ``unclaimed``)."""
        with redis_errors(self._url):
            self._redis.zadd(SENT_KEY, {job_id: time.time()})

    def unclaimed(self, older_than: float) -> list[str]:
        """Queued jobs whose last message was sent more than ``older_than`` seconds ago and
        that no worker has claimed since."""
        with redis_errors(self._url):
            ids = self._redis.zrangebyscore(SENT_KEY, "-inf", time.time() - older_than)
        return [str(job_id) for job_id in ids]

    def unmark_sent(self, job_ids: Sequence[str]) -> None:
        """Forget that messages were sent for jobs that ended or expired."""
        with redis_errors(self._url):
            self._redis.zrem(SENT_KEY, *job_ids)

    def requeue_due(self, job_id: str) -> None:
        """Put a job taken by ``pop_due`` back, when its message could not be sent."""
        with redis_errors(self._url):
            pipe = self._redis.pipeline(transaction=True)
            pipe.zadd(DELAYED_KEY, {job_id: time.time()})
            pipe.zrem(SENT_KEY, job_id)
            pipe.execute()

    def server_epoch(self) -> tuple[str, float]:
        """The Redis server's run id, and the seconds left of the settling window that opened
        when it changed (0 when none): see ``agentq/lua/server_epoch.lua``."""
        with redis_errors(self._url):
            run_id, settle_ms = self._epoch(
                keys=[EPOCH_KEY, SETTLE_KEY], args=[repr(time.time()), int(SETTLE_SECONDS * 1000)]
            )
        return str(run_id), max(0.0, int(settle_ms) / 1000)

    def reassert(self, job_id: str, worker: str, attempt: int) -> str:
        """Mark a job this worker runs as running here again, if it reads ``queued`` (its claim
        was lost with a Redis restart): 'reasserted', 'missing', or the status it has."""
        with redis_errors(self._url):
            result = self._reassert(
                keys=[self.job_key(job_id), RUNNING_KEY, DELAYED_KEY, SENT_KEY],
                args=[
                    worker, repr(time.time()), job_id, self._ttl, attempt, f"{KEY_PREFIX}:",
                ],
            )  # fmt: skip
        return str(result)

    def running(self) -> list[tuple[str, float]]:
        """(job id, when its current attempt started) of every running job."""
        with redis_errors(self._url):
            entries: list[Any] = list(self._redis.zrange(RUNNING_KEY, 0, -1, withscores=True))
        return [(str(entry[0]), float(entry[1])) for entry in entries]

    def statuses(self, job_ids: list[str]) -> dict[str, str | None]:
        with redis_errors(self._url):
            pipe = self._redis.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.hget(self.job_key(job_id), "status")
            values = pipe.execute()
        return {
            job_id: (str(v) if v is not None else None)
            for job_id, v in zip(job_ids, values, strict=True)
        }

    def workers_alive(self, workers: Iterable[str]) -> set[str]:
        """Those of ``workers`` whose heartbeat has not expired."""
        names = sorted(workers)
        if not names:
            return set()
        with redis_errors(self._url):
            pipe = self._redis.pipeline(transaction=False)
            for worker in names:
                pipe.exists(WORKER_PREFIX + worker)
            found = pipe.execute()
        return {worker for worker, exists in zip(names, found, strict=True) if exists}

    def finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        answer: str | None = None,
        usage: Usage | None = None,
        error: JobError | None = None,
        model: str | None = None,
        owner: str = "",
    ) -> bool:
        """Put the job in terminal ``status`` unless it already is in one (or, with ``owner``,
        unless another worker has taken it over); True if applied."""
        fields = _end_fields(status, answer, usage, error, model)
        applied = self._apply(
            job_id, (JobStatus.QUEUED, JobStatus.RUNNING), owner, terminal=True, fields=fields
        )[1]
        self.confirm_durable()
        return applied

    def end_attempt(
        self,
        job_id: str,
        summary: AttemptSummary,
        attempt: AttemptTrace,
        status: JobStatus,
        *,
        answer: str | None = None,
        error: JobError | None = None,
        model: str | None = None,
        owner: str = "",
        also: Callable[[Pipeline], int] | None = None,
    ) -> tuple[bool, Any]:
        """An attempt's record and the job's end in one round trip: ``record_attempt``, then
        ``finish``, then what ``also`` queues (the next dispatch, whose answer is returned), then
        the durable-write confirmation. Returns whether the end applied, and ``also``'s answer.
        (A later attempt first reads the earlier ones' record: one more round trip.)"""
        history, trace = self._earlier(job_id, summary.attempt)
        # Its usage is the attempts' sum, written with its record (``_queue_attempt``).
        fields = _end_fields(status, answer, None, error, model)
        args = self._transition_args(
            job_id, (JobStatus.QUEUED, JobStatus.RUNNING), owner, True, fields
        )
        with redis_errors(self._url):
            pipe = self._redis.pipeline(transaction=False)
            self._queue_attempt(pipe, job_id, summary, attempt, history, trace)
            ended = lua.queue_eval(pipe, self._transition, self._keys(job_id), args)
            extra = also(pipe) if also is not None else None
            durable = self._durable
            replicas = durable.fence(pipe) if durable is not None else None
            results = pipe.execute()
        if durable is not None and replicas is not None:
            durable.confirmed(results[-1], replicas)
        return bool(results[ended][1]), (results[extra] if extra is not None else None)

    def cancel(self, job_id: str) -> str | None:
        """Cancel a queued or running job; returns the status it had (None if it is gone)."""
        self.check_durable()
        ((previous, _applied),) = self._cancel([job_id])
        self.confirm_durable()
        return str(previous) if previous else None

    def cancel_many(self, job_ids: Sequence[str]) -> int:
        """Cancel every queued or running job of ``job_ids`` (pipelined); returns how many.
        The caller checks and confirms (``check_durable``, ``confirm_durable``) once for all
        it cancels."""
        return sum(1 for _previous, applied in self._cancel(job_ids) if applied)

    def _cancel(self, job_ids: Sequence[str]) -> list[Any]:
        """Each job's transition to cancelled (its previous status, whether applied), in one
        round trip with a move of the cancel counter, after them (``cancels``)."""
        change = self._cancel_change()
        with redis_errors(self._url):
            pipe = self._redis.pipeline(transaction=False)
            for job_id in job_ids:
                args = self._transition_args(job_id, *change)
                lua.queue_eval(pipe, self._transition, self._keys(job_id), args)
            pipe.incr(CANCELS_KEY)
            results: list[Any] = pipe.execute()
        return results[:-1]

    def fail_queued(self, job_ids: Sequence[str], error: JobError) -> int:
        """End every still-queued job of ``job_ids`` as failed with ``error`` (pipelined; a job
        already running or ended is left alone); returns how many ended."""
        fields = {
            "status": JobStatus.FAILED,
            "finished_at": time.time(),
            "error": error.model_dump_json(),
        }
        with redis_errors(self._url):
            pipe = self._redis.pipeline(transaction=False)
            for job_id in job_ids:
                args = self._transition_args(job_id, (JobStatus.QUEUED,), "", True, fields)
                lua.queue_eval(pipe, self._transition, self._keys(job_id), args)
            results: list[Any] = pipe.execute()
        return sum(1 for _previous, applied in results if applied)

    def cancels(self) -> int:
        """How many cancel requests Redis has seen (a counter that only moves on): a worker reads
        the statuses of the jobs it runs only when this moved (``Maintenance``)."""
        with redis_errors(self._url):
            return int(self._redis.get(CANCELS_KEY) or 0)

    @staticmethod
    def _cancel_change() -> tuple[tuple[JobStatus, ...], str, bool, dict[str, Any]]:
        error = JobError(code="cancelled", message="cancelled by its owner")
        fields = {
            "status": JobStatus.CANCELLED,
            "finished_at": time.time(),
            "error": error.model_dump_json(),
        }
        return (JobStatus.QUEUED, JobStatus.RUNNING), "", True, fields

    def _apply(
        self,
        job_id: str,
        allowed: Iterable[JobStatus],
        owner: str,
        terminal: bool,
        fields: dict[str, Any],
    ) -> tuple[str | None, bool]:
        args = self._transition_args(job_id, allowed, owner, terminal, fields)
        with redis_errors(self._url):
            previous, applied = self._transition(keys=self._keys(job_id), args=args)
        return (str(previous) if previous else None), bool(applied)

    def _transition_args(
        self,
        job_id: str,
        allowed: Iterable[JobStatus],
        owner: str,
        terminal: bool,
        fields: dict[str, Any],
    ) -> list[Any]:
        args: list[Any] = [
            self._ttl, ",".join(allowed), owner, job_id, "1" if terminal else "0",
            fields["status"], repr(time.time()),
        ]  # fmt: skip
        for name, value in fields.items():
            args.extend([name, _encode(value)])
        return args

    def record_attempt(self, job_id: str, summary: AttemptSummary, attempt: AttemptTrace) -> None:
        """Keep an attempt's summary on the job and its steps in the trace.

        Only the job's current worker writes these, so read-modify-write is safe. A first
        attempt has nothing to read, so it costs one round trip; a later one costs two.
        """
        history, trace = self._earlier(job_id, summary.attempt)
        with redis_errors(self._url):
            pipe = self._redis.pipeline(transaction=False)
            self._queue_attempt(pipe, job_id, summary, attempt, history, trace)
            pipe.execute()

    def _earlier(self, job_id: str, attempt: int) -> tuple[list[AttemptSummary], Trace]:
        """The record of a job's earlier attempts (none to read before the first)."""
        if attempt <= 1:
            return [], Trace(job_id=job_id)
        with redis_errors(self._url):
            pipe = self._redis.pipeline(transaction=False)
            pipe.hget(self.job_key(job_id), "history")
            pipe.get(self.trace_key(job_id))
            raw_history, raw_trace = pipe.execute()
        history = [AttemptSummary.model_validate(h) for h in json.loads(raw_history or "[]")]
        trace = Trace.model_validate_json(raw_trace) if raw_trace else Trace(job_id=job_id)
        return history, trace

    def _queue_attempt(
        self,
        pipe: Pipeline,
        job_id: str,
        summary: AttemptSummary,
        attempt: AttemptTrace,
        history: list[AttemptSummary],
        trace: Trace,
    ) -> None:
        """Queue the writes that add ``summary`` and ``attempt`` to the earlier record."""
        history = [h for h in history if h.attempt != summary.attempt] + [summary]
        history.sort(key=lambda h: h.attempt)
        trace.attempts = [a for a in trace.attempts if a.attempt != attempt.attempt]
        trace.attempts.append(attempt)
        trace.attempts.sort(key=lambda a: a.attempt)
        encoded = json.dumps([h.model_dump(mode="json") for h in history])
        fields: dict[str, str] = {"history": encoded}
        # What the job's model calls used and cost is what every attempt spent, not only the
        # last one's: a retried job paid for its failed attempts' calls too.
        usage = Usage.total(h.usage for h in history)
        if usage is not None:
            fields["usage"] = usage.model_dump_json()
        if summary.service_tier is not None:
            fields["served_tier"] = summary.service_tier
        if summary.model is not None:
            fields["model"] = summary.model
        pipe.hset(self.job_key(job_id), mapping=fields)  # type: ignore[arg-type]
        if attempt.totals.tool_calls:
            pipe.hincrby(self.job_key(job_id), "tool_calls", attempt.totals.tool_calls)
        pipe.expire(self.job_key(job_id), self._ttl)
        pipe.set(self.trace_key(job_id), trace.model_dump_json(), ex=self._ttl)

    # Reading -----------------------------------------------------------------------------

    def load(self, job_id: str) -> Job | None:
        with redis_errors(self._url):
            raw = self._redis.hgetall(self.job_key(job_id))
        return _from_hash(raw) if raw else None

    def load_owned(self, job_id: str, token: str, sealer: TokenSealer) -> Job:
        """The job if ``token`` submitted it; else JobNotFound, exactly as if it did not exist.

        Only the owner field is read before the check, so another owner's job takes the same
        path (one HGET, one fingerprint) as a missing one: its record is never loaded."""
        with redis_errors(self._url):
            owner = self._redis.hget(self.job_key(job_id), "owner")
        if not sealer.owns(str(owner or ""), token):
            raise JobNotFound(job_id)
        job = self.load(job_id)
        if job is None:  # expired in between
            raise JobNotFound(job_id)
        return job

    def load_trace(self, job_id: str) -> Trace | None:
        with redis_errors(self._url):
            raw = self._redis.get(self.trace_key(job_id))
        return Trace.model_validate_json(raw) if raw else None


def _end_fields(
    status: JobStatus,
    answer: str | None,
    usage: Usage | None,
    error: JobError | None,
    model: str | None,
) -> dict[str, Any]:
    """The fields a job's end sets, its terminal ``status`` among them."""
    assert status in TERMINAL_STATUSES
    fields: dict[str, Any] = {"status": status, "finished_at": time.time()}
    if answer is not None:
        fields["answer"] = answer
    if usage is not None:
        fields["usage"] = usage.model_dump_json()
    if error is not None:
        fields["error"] = error.model_dump_json()
    if model is not None:
        fields["model"] = model
    return fields


def _encode(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _to_hash(job: Job) -> dict[str, str]:
    data = job.model_dump(mode="json", exclude_none=True)
    out: dict[str, str] = {}
    for name, value in data.items():
        out[name] = json.dumps(value) if name in _JSON_FIELDS else _encode(value)
    return out


def _from_hash(raw: dict[Any, Any]) -> Job:
    data: dict[str, Any] = {str(k): v for k, v in raw.items() if k in Job.model_fields}
    for name in _JSON_FIELDS:
        if name in data:
            data[name] = json.loads(data[name])
    return Job.model_validate(data)
