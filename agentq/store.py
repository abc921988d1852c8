"""The job store: job records and traces in Redis, with a retention TTL.

A job is a Redis hash written as ``queued``, in the same transaction that puts it in its dispatch
lane (``agentq.dispatch``), so a job a worker takes always exists and no job is written without
being queued. Status changes go through
one Lua script that only applies a change from an allowed status: a redelivered or late message
can never move a finished job back to ``running`` or finish it twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.client import Pipeline

from agentq.connections import redis_errors
from agentq.errors import AgentqError, JobNotFound
from agentq.jobs import TERMINAL_STATUSES, AttemptSummary, Job, JobError, JobStatus, Usage
from agentq.sealing import SealBinding, TokenSealer
from agentq.traces import AttemptTrace, Trace

KEY_PREFIX = "agentq"
RUNNING_KEY = f"{KEY_PREFIX}:running"  # zset: job id -> when its current attempt started
DELAYED_KEY = f"{KEY_PREFIX}:delayed"  # zset: job id -> when its next attempt is due
NOTIFY_KEY = f"{KEY_PREFIX}:notify"  # zset: ended job id with a webhook -> when it ended
SENT_KEY = f"{KEY_PREFIX}:sent"  # zset: queued job id -> when its message was last sent
# kombu's Redis transport keeps messages a worker took but has not acknowledged here.
KOMBU_UNACKED_KEY = "unacked"
OWNER_PREFIX = f"{KEY_PREFIX}:owner:"  # + owner fingerprint: zset of its job ids by creation
SEALED_PREFIX = f"{KEY_PREFIX}:sealed:"  # + job id: its sealed token, while it has not ended
OWNER_INDEX_SIZE = 10_000  # newest job ids kept in an owner's index
WORKER_PREFIX = f"{KEY_PREFIX}:worker:"  # + worker name: heartbeat, expires when it dies
TERMINAL = ",".join(TERMINAL_STATUSES)

# Shared by the status scripts below: what every status change must also do, atomically with it.
# A job that ends, however it ends, drops its sealed token (nothing may run it any more), gives
# back its dispatch slots (see ``agentq.dispatch``) and its place in its tenant's open-jobs quota
# (``agentq.quotas``) and, if it has a webhook, is noted in NOTIFY_KEY; a job in a batch moves the
# batch's per-status counters, and the batch's last job to end marks the batch ended (and gives
# back its tenant's open-batch quota). A job's tenant is its owner fingerprint at submission: the
# ``tenant`` field keeps it when ``agentq reseal`` moves the job to a new-key fingerprint.
_ON_MOVE = """
local function job_moved(jkey, id, old, new, now)
  local f = redis.call('HMGET', jkey, 'owner', 'lane', 'batch_id', 'tenant')
  local ended = (new == 'succeeded' or new == 'failed' or new == 'cancelled')
  if ended then
    redis.call('DEL', 'agentq:sealed:' .. id)
    local tenant = f[4] or f[1]
    if tenant then
      redis.call('ZREM', 'agentq:inflight:t:' .. tenant, id)
      redis.call('ZREM', 'agentq:open:j:' .. tenant, id)
    end
    if f[2] then redis.call('ZREM', 'agentq:inflight:l:' .. f[2], id) end
    if redis.call('HEXISTS', jkey, 'webhook_url') == 1 then
      redis.call('ZADD', 'agentq:notify', now, id)
    end
  end
  if f[3] and old ~= new then
    local bkey = 'agentq:batch:' .. f[3]
    if redis.call('EXISTS', bkey) == 1 then
      redis.call('HINCRBY', bkey, old, -1)
      redis.call('HINCRBY', bkey, new, 1)
      if ended then
        local done = redis.call('HINCRBY', bkey, 'ended', 1)
        if done == tonumber(redis.call('HGET', bkey, 'total') or '-1') then
          redis.call('HSET', bkey, 'finished_at', now)
          redis.call('ZADD', 'agentq:batches:ended', now, f[3])
          local tenant = f[4] or f[1]
          if tenant then redis.call('ZREM', 'agentq:open:b:' .. tenant, f[3]) end
        end
      end
    end
  end
end
"""

# Change a job's status if it is in an allowed one (and, if given, owned by a worker).
# KEYS: job, running, delayed, sealed, sent. ARGV: ttl, allowed (csv), owner or '', job id,
# '1' if the new status is terminal (drop the job from the indexes; ``job_moved`` drops its sealed
# token), the new status, now, then field/value pairs. Returns {previous status or false, 1 if
# applied else 0}.
_TRANSITION = (
    _ON_MOVE
    + """
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return {false, 0} end
local allowed = false
for status in string.gmatch(ARGV[2], '[^,]+') do
  if status == current then allowed = true end
end
if not allowed then return {current, 0} end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'worker') ~= ARGV[3] then
  return {current, 0}
end
if #ARGV > 7 then redis.call('HSET', KEYS[1], unpack(ARGV, 8)) end
if ARGV[5] == '1' then
  redis.call('ZREM', KEYS[2], ARGV[4])
  redis.call('ZREM', KEYS[3], ARGV[4])
  redis.call('ZREM', KEYS[5], ARGV[4])
end
job_moved(KEYS[1], ARGV[4], current, ARGV[6], ARGV[7])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return {current, 1}
"""
)

# Take a job for a run. KEYS: job, running, delayed, sent. ARGV: ttl, worker, worker key prefix,
# now, poison_after, job id, error JSON for a poisoned job. A running job whose worker is alive is
# 'busy' (a duplicate delivery); one whose worker died is taken over, unless its runs were lost
# too often. A queued job whose retry is not yet due is 'early' (its delayed entry will send it).
_CLAIM = (
    _ON_MOVE
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status == 'succeeded' or status == 'failed' or status == 'cancelled' then
  return 'terminal'
end
if status == 'running' then
  local owner = redis.call('HGET', KEYS[1], 'worker')
  if owner and redis.call('EXISTS', ARGV[3] .. owner) == 1 then return 'busy' end
  local lost = redis.call('HINCRBY', KEYS[1], 'lost_runs', 1)
  if lost >= tonumber(ARGV[5]) then
    redis.call('HSET', KEYS[1], 'status', 'failed', 'finished_at', ARGV[4], 'error', ARGV[7])
    redis.call('ZREM', KEYS[2], ARGV[6])
    redis.call('ZREM', KEYS[3], ARGV[6])
    job_moved(KEYS[1], ARGV[6], 'running', 'failed', ARGV[4])
    redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
    return 'poisoned'
  end
else
  local due = redis.call('HGET', KEYS[1], 'next_attempt_at')
  if due and tonumber(due) > tonumber(ARGV[4]) + 0.5 then return 'early' end
end
redis.call('HSET', KEYS[1], 'status', 'running', 'worker', ARGV[2], 'attempt_started_at', ARGV[4])
job_moved(KEYS[1], ARGV[6], status, 'running', ARGV[4])
redis.call('HDEL', KEYS[1], 'next_attempt_at')
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSETNX', KEYS[1], 'started_at', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[6])
redis.call('ZREM', KEYS[3], ARGV[6])
redis.call('ZREM', KEYS[4], ARGV[6])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
if ARGV[8] == '1' then
  return {'claimed', redis.call('HGETALL', KEYS[1]), redis.call('GET', KEYS[5])}
end
return 'claimed'
"""
)

# Put a running job back in the queue for a later attempt. KEYS: job, running, delayed.
# ARGV: ttl, owner ('' = whoever), due time, job id, '1' to count a lost run, poison_after,
# now, error JSON if poisoned. Returns 'queued', 'poisoned' or 'skipped'.
_REQUEUE = (
    _ON_MOVE
    + """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 'skipped' end
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'worker') ~= ARGV[2] then return 'skipped' end
redis.call('ZREM', KEYS[2], ARGV[4])
if ARGV[5] == '1' then
  local lost = redis.call('HINCRBY', KEYS[1], 'lost_runs', 1)
  if lost >= tonumber(ARGV[6]) then
    redis.call('HSET', KEYS[1], 'status', 'failed', 'finished_at', ARGV[7], 'error', ARGV[8])
    job_moved(KEYS[1], ARGV[4], 'running', 'failed', ARGV[7])
    redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
    return 'poisoned'
  end
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'next_attempt_at', ARGV[3])
job_moved(KEYS[1], ARGV[4], 'running', 'queued', ARGV[7])
redis.call('HDEL', KEYS[1], 'worker')
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return 'queued'
"""
)

# Move a waiting job to the newest key: its sealed token (re-bound to the new owner fingerprint)
# and, if the fingerprint changed, its owner field, its place in the owner index, and its batch's
# owner and place in the batches' owner index (``agentq.batches``). The dispatch tenant stays the
# one it was queued under (``tenant``). Applied only if neither the sealed token nor the owner
# changed since they were read. KEYS: job, sealed. ARGV: sealed as read, new sealed, owner as
# read, new owner, job id, key prefix, ttl. Returns 'resealed', 'moved', 'dropped' (the job had
# ended or is gone: its sealed token is deleted) or 'changed'.
_RESEAL = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 'changed' end
local f = redis.call('HMGET', KEYS[1], 'status', 'owner', 'created_at', 'batch_id')
if not f[1] or f[1] == 'succeeded' or f[1] == 'failed' or f[1] == 'cancelled' then
  redis.call('DEL', KEYS[2])
  return 'dropped'
end
if f[2] ~= ARGV[3] then return 'changed' end
redis.call('SET', KEYS[2], ARGV[2], 'KEEPTTL')
local old, new, id, p, ttl = ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
if old == new then return 'resealed' end
redis.call('HSETNX', KEYS[1], 'tenant', old)
redis.call('HSET', KEYS[1], 'owner', new)
redis.call('ZREM', p .. 'owner:' .. old, id)
redis.call('ZADD', p .. 'owner:' .. new, f[3], id)
redis.call('EXPIRE', p .. 'owner:' .. new, ttl)
if f[4] then
  local bkey = p .. 'batch:' .. f[4]
  if redis.call('HGET', bkey, 'owner') == old then
    local created = redis.call('HGET', bkey, 'created_at')
    redis.call('HSET', bkey, 'owner', new)
    redis.call('ZREM', p .. 'owner:' .. old .. ':batches', f[4])
    redis.call('ZADD', p .. 'owner:' .. new .. ':batches', created, f[4])
    redis.call('EXPIRE', p .. 'owner:' .. new .. ':batches', ttl)
  end
end
return 'moved'
"""

# Take up to ARGV[2] job ids whose next attempt is due at ARGV[1]; each is taken once.
_POP_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do redis.call('ZREM', KEYS[1], id) end
return due
"""

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

    def __init__(self, client: redis.Redis, ttl: int, url: str = "redis") -> None:
        self._redis = client
        self._ttl = ttl
        self._url = url
        self._transition = client.register_script(_TRANSITION)
        self._claim = client.register_script(_CLAIM)
        self._requeue = client.register_script(_REQUEUE)
        self._pop_due = client.register_script(_POP_DUE)
        self._reseal = client.register_script(_RESEAL)

    @property
    def redis(self) -> redis.Redis:
        return self._redis

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
    ) -> None:
        """Write new jobs of one owner, each with its own sealed token (bound to it, see
        ``agentq.sealing``; kept so a lost or retried run can be resent), in one transaction
        with ``enqueue`` (which queues them for dispatch): all of it is written or none of it."""
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
            pipe.execute()

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
        'early', 'poisoned')."""
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
                    self.sealed_key(job_id),
                ],
                args=[
                    self._ttl, worker, WORKER_PREFIX, repr(time.time()), poison_after, job_id,
                    POISONED_ERROR.model_dump_json(), "1" if load else "0",
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
            due = self._pop_due(keys=[DELAYED_KEY], args=[repr(time.time()), limit])
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

    def message_pending(self, queue: str, job_id: str) -> bool:
        """Whether the broker may still hold a message for the job: its queue is not empty, or
        a worker took one and has not acknowledged it (kombu keeps those in its unacked hash)."""
        with redis_errors(self._url):
            if self._redis.llen(queue) > 0:
                return True
            for raw in self._redis.hvals(KOMBU_UNACKED_KEY):
                try:
                    message = json.loads(raw)[0]
                except (ValueError, IndexError, TypeError):
                    continue
                if isinstance(message, dict) and message.get("headers", {}).get("id") == job_id:
                    return True
        return False

    def requeue_due(self, job_id: str) -> None:
        """Put a job taken by ``pop_due`` back, when its message could not be sent."""
        with redis_errors(self._url):
            self._redis.zadd(DELAYED_KEY, {job_id: time.time()})

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

    def worker_alive(self, worker: str) -> bool:
        with redis_errors(self._url):
            return bool(self._redis.exists(WORKER_PREFIX + worker))

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
        return self._apply(
            job_id, (JobStatus.QUEUED, JobStatus.RUNNING), owner, terminal=True, fields=fields
        )[1]

    def cancel(self, job_id: str) -> str | None:
        """Cancel a queued or running job; returns the status it had (None if it is gone)."""
        previous, _applied = self._apply(job_id, *self._cancel_change())
        return previous

    def cancel_many(self, job_ids: Sequence[str]) -> int:
        """Cancel every queued or running job of ``job_ids`` (pipelined); returns how many."""
        change = self._cancel_change()
        with redis_errors(self._url):
            pipe = self._redis.pipeline(transaction=False)
            for job_id in job_ids:
                self._transition(
                    keys=self._keys(job_id),
                    args=self._transition_args(job_id, *change),
                    client=pipe,
                )
            results = pipe.execute()
        return sum(1 for _previous, applied in results if applied)

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
        history: list[AttemptSummary] = []
        trace = Trace(job_id=job_id)
        with redis_errors(self._url):
            if summary.attempt > 1:
                pipe = self._redis.pipeline(transaction=False)
                pipe.hget(self.job_key(job_id), "history")
                pipe.get(self.trace_key(job_id))
                raw_history, raw_trace = pipe.execute()
                history = [
                    AttemptSummary.model_validate(h) for h in json.loads(raw_history or "[]")
                ]
                if raw_trace:
                    trace = Trace.model_validate_json(raw_trace)
            history = [h for h in history if h.attempt != summary.attempt] + [summary]
            history.sort(key=lambda h: h.attempt)
            trace.attempts = [a for a in trace.attempts if a.attempt != attempt.attempt]
            trace.attempts.append(attempt)
            trace.attempts.sort(key=lambda a: a.attempt)
            encoded = json.dumps([h.model_dump(mode="json") for h in history])
            pipe = self._redis.pipeline(transaction=False)
            pipe.hset(self.job_key(job_id), "history", encoded)
            if attempt.totals.tool_calls:
                pipe.hincrby(self.job_key(job_id), "tool_calls", attempt.totals.tool_calls)
            pipe.expire(self.job_key(job_id), self._ttl)
            pipe.set(self.trace_key(job_id), trace.model_dump_json(), ex=self._ttl)
            pipe.execute()

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
