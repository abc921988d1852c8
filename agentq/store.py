"""The job store: job records and traces in Redis, with a retention TTL.

A job is a Redis hash written as ``queued`` *before* its Celery message is sent, so a job a worker
takes always exists, and a job that could not be sent is deleted again. Status changes go through
one Lua script that only applies a change from an allowed status: a redelivered or late message
can never move a finished job back to ``running`` or finish it twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

from agentq.errors import JobNotFound, ServiceUnavailable
from agentq.jobs import TERMINAL_STATUSES, Job, JobError, JobStatus, Usage
from agentq.sealing import TokenSealer
from agentq.traces import AttemptTrace, Trace

KEY_PREFIX = "agentq"

# KEYS[1] job hash. ARGV[1] ttl seconds, ARGV[2] "1" to count an attempt, ARGV[3] comma-separated
# statuses the job may be in for the change to apply, ARGV[4..] field/value pairs to set.
# Returns {previous status or false, 1 if applied else 0}.
_TRANSITION = """
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return {false, 0} end
local allowed = false
for status in string.gmatch(ARGV[3], '[^,]+') do
  if status == current then allowed = true end
end
if not allowed then return {current, 0} end
if ARGV[2] == '1' then redis.call('HINCRBY', KEYS[1], 'attempts', 1) end
if #ARGV > 3 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 4))
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return {current, 1}
"""

_JSON_FIELDS = ("usage", "error", "metadata")


def redact_url(url: str) -> str:
    """``url`` with any password replaced, for error messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def connect(url: str, timeout: float = 5.0) -> redis.Redis:
    """A Redis client that answers with str and fails fast when Redis is down."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        health_check_interval=30,
    )


@contextmanager
def redis_errors(url: str) -> Iterator[None]:
    """Turn a Redis connection failure into one clear ServiceUnavailable line."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        reason = str(exc).split("\n")[0] or type(exc).__name__
        raise ServiceUnavailable(f"cannot reach Redis at {redact_url(url)}: {reason}") from None


class JobStore:
    """Reads and writes job records and traces; every key expires after ``ttl`` seconds."""

    def __init__(self, client: redis.Redis, ttl: int, url: str = "redis") -> None:
        self._redis = client
        self._ttl = ttl
        self._url = url
        self._transition = client.register_script(_TRANSITION)

    @staticmethod
    def job_key(job_id: str) -> str:
        return f"{KEY_PREFIX}:job:{job_id}"

    @staticmethod
    def trace_key(job_id: str) -> str:
        return f"{KEY_PREFIX}:trace:{job_id}"

    # Writing -----------------------------------------------------------------------------

    def create(self, job: Job) -> None:
        with redis_errors(self._url):
            pipe = self._redis.pipeline(transaction=True)
            pipe.hset(self.job_key(job.id), mapping=_to_hash(job))  # type: ignore[arg-type]
            pipe.expire(self.job_key(job.id), self._ttl)
            pipe.execute()

    def delete(self, job_id: str) -> None:
        with redis_errors(self._url):
            self._redis.delete(self.job_key(job_id), self.trace_key(job_id))

    def start_attempt(self, job_id: str) -> Job | None:
        """Mark the job running and count an attempt; None if it is gone or already terminal."""
        now = time.time()
        applied = self._apply(
            job_id,
            allowed=(JobStatus.QUEUED, JobStatus.RUNNING),
            count_attempt=True,
            fields={"status": JobStatus.RUNNING, "attempt_started_at": now},
        )
        if not applied:
            return None
        job = self.load(job_id)
        if job is not None and job.started_at is None:
            self._redis.hsetnx(self.job_key(job_id), "started_at", repr(now))
            job.started_at = now
        return job

    def finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        answer: str | None = None,
        usage: Usage | None = None,
        error: JobError | None = None,
        model: str | None = None,
    ) -> bool:
        """Put the job in terminal ``status`` unless it already is in one; True if applied."""
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
            job_id,
            allowed=(JobStatus.QUEUED, JobStatus.RUNNING),
            count_attempt=False,
            fields=fields,
        )

    def _apply(
        self,
        job_id: str,
        allowed: Iterable[JobStatus],
        count_attempt: bool,
        fields: dict[str, Any],
    ) -> bool:
        args: list[Any] = [self._ttl, "1" if count_attempt else "0", ",".join(allowed)]
        for name, value in fields.items():
            args.extend([name, _encode(value)])
        with redis_errors(self._url):
            _previous, applied = self._transition(keys=[self.job_key(job_id)], args=args)
        return bool(applied)

    def append_attempt(self, job_id: str, attempt: AttemptTrace) -> Trace:
        """Add one attempt's steps to the job's trace (only the job's current worker writes it)."""
        trace = self.load_trace(job_id) or Trace(job_id=job_id)
        trace.attempts = [a for a in trace.attempts if a.attempt != attempt.attempt]
        trace.attempts.append(attempt)
        trace.attempts.sort(key=lambda a: a.attempt)
        with redis_errors(self._url):
            self._redis.set(self.trace_key(job_id), trace.model_dump_json(), ex=self._ttl)
        return trace

    # Reading -----------------------------------------------------------------------------

    def load(self, job_id: str) -> Job | None:
        with redis_errors(self._url):
            raw = self._redis.hgetall(self.job_key(job_id))
        return _from_hash(raw) if raw else None

    def load_owned(self, job_id: str, token: str, sealer: TokenSealer) -> Job:
        """The job if ``token`` submitted it; else JobNotFound, exactly as if it did not exist."""
        job = self.load(job_id)
        if job is None or not sealer.owns(job.owner, token):
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
