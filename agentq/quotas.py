"""Per-tenant submit quotas: open jobs, open batches and submits per minute.

The in-flight cap (``agentq.dispatch``) bounds what a tenant *runs*; these bound what it may
*pile up*: without them one token could fill Redis with millions of queued jobs, or submit in a
tight loop. A tenant is one owner fingerprint (one Infrahub token).

- open jobs: a sorted set per tenant of its jobs not yet ended (job id -> created at), added in
  the transaction that creates them and removed by the store's status scripts when each ends;
- open batches: the same for batches, removed when a batch's last job ends;
- submits: a counter per tenant and minute (a fixed window; a batch is one submit).

Entries older than the job TTL are dropped before counting, so a job whose record expired
without ending (it cannot: every job ends, but Redis may have lost a write) never holds a slot.
Checking and writing are two steps, so concurrent submits of one tenant may overshoot a limit by
the number in flight at once: a bound, not an exact count.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis
from redis.client import Pipeline

from agentq import lua
from agentq.connections import redis_errors
from agentq.errors import AgentqError, ErrorCode
from agentq.settings import Settings
from agentq.store import KEY_PREFIX

OPEN_JOBS_PREFIX = f"{KEY_PREFIX}:open:j:"  # + tenant: zset of its jobs not yet ended
OPEN_BATCHES_PREFIX = f"{KEY_PREFIX}:open:b:"  # + tenant: zset of its batches not yet ended
SUBMITS_PREFIX = f"{KEY_PREFIX}:submits:"  # + tenant:minute: submits in that minute


class QuotaExceeded(AgentqError):
    """A submit refused by a tenant quota: HTTP 429 with Retry-After, CLI exit 5."""

    code = ErrorCode.QUOTA_EXCEEDED


def open_jobs_key(tenant: str) -> str:
    return OPEN_JOBS_PREFIX + tenant


def open_batches_key(tenant: str) -> str:
    return OPEN_BATCHES_PREFIX + tenant


class Quotas:
    """Checks a tenant's quotas before a submit and records what the submit opened."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._settings = settings
        self._ttl = settings.job_ttl_seconds
        self._url = settings.redis_url
        self._admit = lua.register(client, "quotas_admit")

    def admit(self, tenant: str, jobs: int, *, batch: bool) -> None:
        """Count one submit of ``jobs`` jobs (a batch if ``batch``), or raise QuotaExceeded."""
        settings = self._settings
        now = time.time()
        minute = int(now // 60)
        with redis_errors(self._url):
            verdict = self._admit(
                keys=[
                    open_jobs_key(tenant),
                    open_batches_key(tenant),
                    f"{SUBMITS_PREFIX}{tenant}:{minute}",
                ],
                args=[
                    now,
                    now - self._ttl,
                    jobs,
                    1 if batch else 0,
                    settings.tenant_max_queued_jobs,
                    settings.tenant_max_queued_batches,
                    settings.tenant_submits_per_minute,
                    max(1, 60 - int(now % 60)),
                ],
            )
        limit = verdict[0].decode() if isinstance(verdict[0], bytes) else str(verdict[0])
        if limit == "ok":
            return
        retry_after = float(verdict[1])
        if limit == "submits":
            message = (
                f"too many submits: at most {settings.tenant_submits_per_minute} a minute per "
                "token (AGENTQ_TENANT_SUBMITS_PER_MINUTE)"
            )
        elif limit == "jobs":
            message = (
                f"too many unfinished jobs: at most {settings.tenant_max_queued_jobs:,} per "
                f"token (AGENTQ_TENANT_MAX_QUEUED_JOBS); this submit adds {jobs:,}"
            )
        else:
            message = (
                f"too many unfinished batches: at most {settings.tenant_max_queued_batches} per "
                "token (AGENTQ_TENANT_MAX_QUEUED_BATCHES)"
            )
        raise QuotaExceeded(f"{message}; try again later", retry_after=retry_after)

    def opened(
        self,
        pipe: Pipeline,
        tenant: str,
        job_ids: Sequence[str],
        created_at: float,
        batch_id: str | None = None,
    ) -> None:
        """Record new jobs (and batch) as open, inside the transaction that creates them."""
        if job_ids:
            key = open_jobs_key(tenant)
            pipe.zadd(key, dict.fromkeys(job_ids, created_at))
            pipe.expire(key, self._ttl)
        if batch_id is not None:
            key = open_batches_key(tenant)
            pipe.zadd(key, {batch_id: created_at})
            pipe.expire(key, self._ttl)
