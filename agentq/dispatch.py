"""Admission: which queued job gets a Celery message next.

A submitted job does not go straight to the broker. It waits in a *lane* in Redis (one lane per
tenant for single questions, one per batch), and a dispatcher hands out messages round-robin over
the lanes, one job per lane per turn, while:

- the tenant has fewer than ``AGENTQ_TENANT_MAX_INFLIGHT`` jobs dispatched and not yet ended;
- the lane (a batch) has fewer than its own cap (``AGENTQ_BATCH_MAX_INFLIGHT`` or the batch's);
- the broker queue stays shallow: messages waiting plus jobs running stay within the live
  workers' slots plus ``AGENTQ_DISPATCH_HEADROOM``.

So a 2,000-question audit never sits in front of another tenant's single question: the broker
never holds more than a few spare messages, and the next free slot goes to the next lane in turn.
Celery still carries each dispatched job (acks-late, redelivery, the lost-message lease), so
everything the reliability design guarantees holds from dispatch on.

Anyone may dispatch: the producer right after a submit (so a lone job starts at once), a worker
right after a job ends (its slot is free) and each worker's maintenance tick. The script
(``agentq/lua/dispatch_take.lua``) is atomic, so concurrent dispatchers never overshoot a cap. A
job keeps its slot from dispatch until it ends, retries and requeues included; the store's status
scripts release it (``agentq/lua/store_job_moved.lua``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis
from celery import Celery

from agentq import lua
from agentq.celery_app import send_job
from agentq.connections import redis_errors
from agentq.jobs import TERMINAL_STATUSES
from agentq.logs import get_logger
from agentq.settings import Settings
from agentq.store import (
    EPOCH_KEY,
    KEY_PREFIX,
    RUNNING_KEY,
    SENT_KEY,
    SETTLE_KEY,
    SETTLE_SECONDS,
    WORKER_PREFIX,
    JobStore,
)

log = get_logger(__name__)

LANES_KEY = f"{KEY_PREFIX}:lanes"  # list: lanes with waiting jobs, in turn order
LANE_SET_KEY = f"{KEY_PREFIX}:lanes:set"  # set: the same lanes, so each is listed once
CAPACITY_KEY = f"{KEY_PREFIX}:capacity"  # hash: worker name -> its job slots
TENANTS_KEY = f"{KEY_PREFIX}:tenants"  # set: tenants that have had jobs in flight


def lane_key(lane: str) -> str:
    return f"{KEY_PREFIX}:lane:{lane}"


def lane_meta_key(lane: str) -> str:
    return f"{KEY_PREFIX}:lanemeta:{lane}"


def tenant_inflight_key(tenant: str) -> str:
    return f"{KEY_PREFIX}:inflight:t:{tenant}"


def lane_inflight_key(lane: str) -> str:
    return f"{KEY_PREFIX}:inflight:l:{lane}"


class Dispatcher:
    """Puts jobs in lanes and hands out their messages; see the module docstring."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        tenant_cap: int,
        headroom: int,
        ttl: int,
        default_queue: str,
        url: str = "redis",
    ) -> None:
        self._redis = client
        self._tenant_cap = tenant_cap
        self._headroom = headroom
        self._ttl = ttl
        self._default_queue = default_queue
        self._url = url
        self.enqueue_script = lua.register(client, "dispatch_enqueue")
        self._dispatch = lua.register(client, "dispatch_take")
        self._undispatch = lua.register(client, "dispatch_undispatch")

    @classmethod
    def for_settings(cls, client: redis.Redis, settings: Settings) -> Dispatcher:
        return cls(
            client,
            tenant_cap=settings.tenant_max_inflight,
            headroom=settings.dispatch_headroom,
            ttl=settings.job_ttl_seconds,
            default_queue=settings.queue,
            url=settings.redis_url,
        )

    def enqueue(
        self,
        pipe: redis.client.Pipeline,
        lane: str,
        tenant: str,
        job_ids: Sequence[str],
        *,
        cap: int = 0,
        held: bool = False,
    ) -> None:
        """Queue ``job_ids`` in ``lane`` as part of ``pipe`` (the transaction creating them)."""
        lua.queue_eval(
            pipe,
            self.enqueue_script,
            [LANES_KEY, LANE_SET_KEY, lane_key(lane), lane_meta_key(lane)],
            [lane, tenant, cap, "1" if held else "0", self._ttl, *job_ids],
        )

    def release_lane(self, lane: str) -> None:
        """Let a held lane's jobs be dispatched (a batch whose every job is written)."""
        with redis_errors(self._url):
            self._redis.hset(lane_meta_key(lane), "held", "0")

    def take(self, limit: int = 500) -> list[tuple[str, str]]:
        """Jobs that may be sent now, as (job id, queue); each is handed out once."""
        with redis_errors(self._url):
            flat = self._dispatch(keys=self._take_keys(), args=self._take_args(limit))
        return self.taken(flat)

    def take_after(self, pipe: redis.client.Pipeline, limit: int = 500) -> int:
        """Queue ``take`` at the end of ``pipe`` (a job's end, whose freed slot goes to the next
        job, or the transaction creating a lone job), so it goes in the same round trip;
        returns where its answer is, for ``taken``."""
        return lua.queue_eval(pipe, self._dispatch, self._take_keys(), self._take_args(limit))

    def taken(self, flat: list[Any]) -> list[tuple[str, str]]:
        """The dispatch script's answer as (job id, queue) pairs."""
        pairs = [(str(flat[i]), str(flat[i + 1])) for i in range(0, len(flat), 2)]
        return [(job_id, queue or self._default_queue) for job_id, queue in pairs]

    @staticmethod
    def _take_keys() -> list[Any]:
        return [
            LANES_KEY, LANE_SET_KEY, CAPACITY_KEY, RUNNING_KEY, SENT_KEY, TENANTS_KEY,
            EPOCH_KEY, SETTLE_KEY,
        ]  # fmt: skip

    def _take_args(self, limit: int) -> list[Any]:
        return [
            repr(time.time()), self._tenant_cap, limit, self._headroom,
            f"{KEY_PREFIX}:", WORKER_PREFIX, int(SETTLE_SECONDS * 1000),
        ]  # fmt: skip

    def dispatch(self, celery: Celery, limit: int = 500) -> int:
        """Send the messages of every job that may run now; returns how many were sent.

        A job whose message cannot be sent goes back to the front of its lane, and the error
        is raised.
        """
        return self.send(celery, self.take(limit))

    def send(self, celery: Celery, taken: list[tuple[str, str]]) -> int:
        """Send the messages of jobs ``take`` handed out (see ``dispatch``)."""
        for position, (job_id, queue) in enumerate(taken):
            try:
                send_job(celery, queue, job_id)
            except Exception:
                for unsent, _queue in taken[position:]:
                    self.undispatch(unsent)
                raise
        if taken:
            log.debug("dispatched jobs", count=len(taken))
        return len(taken)

    def undispatch(self, job_id: str) -> None:
        with redis_errors(self._url):
            self._undispatch(
                keys=[LANES_KEY, LANE_SET_KEY, SENT_KEY], args=[job_id, f"{KEY_PREFIX}:"]
            )

    def register_worker(self, worker: str, slots: int) -> None:
        """Count a live worker's slots in the dispatch window (refreshed with its heartbeat)."""
        with redis_errors(self._url):
            self._redis.hset(CAPACITY_KEY, worker, slots)

    def unregister_worker(self, worker: str) -> None:
        with redis_errors(self._url):
            self._redis.hdel(CAPACITY_KEY, worker)

    def inflight(self, tenant: str) -> int:
        with redis_errors(self._url):
            return int(self._redis.zcard(tenant_inflight_key(tenant)))

    def waiting(self, lane: str) -> int:
        with redis_errors(self._url):
            return int(self._redis.llen(lane_key(lane)))

    def repair(self, store: JobStore, older_than: float = 60.0) -> int:
        """Free the slots of jobs that ended or expired without releasing them (a job record
        that expired while in flight); returns how many were freed."""
        freed = 0
        cutoff = time.time() - older_than
        with redis_errors(self._url):
            tenants = [str(t) for t in self._redis.smembers(TENANTS_KEY)]  # type: ignore[union-attr]
        for tenant in tenants:
            key = tenant_inflight_key(tenant)
            with redis_errors(self._url):
                ids = [str(i) for i in self._redis.zrangebyscore(key, "-inf", cutoff)]
                if not ids and not self._redis.zcard(key):
                    self._redis.srem(TENANTS_KEY, tenant)
                    continue
            statuses = store.statuses(ids)
            stale = [i for i, st in statuses.items() if st is None or st in TERMINAL_STATUSES]
            if stale:
                with redis_errors(self._url):
                    self._redis.zrem(key, *stale)
                freed += len(stale)
        return freed
