"""Limits shared by every worker through Redis: a request rate and a count of open requests.

The Infrahub MCP server's rate limit is global (every MCP message of every client counts), and a
model endpoint has its own concurrency limits; one worker process cannot know what the others
send. So the budget lives in Redis:

- ``RateLimiter`` paces requests (GCRA-style reservations: each request books the next free
  slot and waits until it comes), so in steady state the server's own limit is never hit. A
  process holds one booking at a time (its requests queue for their turn locally): were every
  waiting request to hold a booking, a stalled event loop (a CPU-starved host, a long GC pause,
  a throttled container) would wake them all at once and send their past slots as one burst,
  which the server's bucket refuses; this way a stall costs at most one extra request;
- ``Semaphore`` holds at most N leases at once, each with an expiry, so a worker that dies holding
  one cannot shrink the pool for long.

Both use Redis's own clock, so workers with skewed clocks agree. Being limited only delays work:
when Redis cannot be reached a limiter lets the request through (logged), rather than failing a
job over a missing budget.
"""

from __future__ import annotations

import asyncio
import random
import uuid

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from agentq import lua
from agentq.logs import get_logger
from agentq.store import KEY_PREFIX

log = get_logger(__name__)

MCP_RATE_KEY = f"{KEY_PREFIX}:limit:mcp-rate"
MODEL_SLOTS_KEY = f"{KEY_PREFIX}:limit:model-slots"


class RateLimiter:
    """At most ``per_second`` requests per second across every process using ``key``."""

    def __init__(self, client: aioredis.Redis, key: str, per_second: float) -> None:
        self._client = client
        self._key = key
        self._interval = 1.0 / per_second
        self._reserve = lua.register(client, "ratelimit_reserve")
        self._turn = asyncio.Lock()  # FIFO: this process's requests book one at a time

    async def wait(self) -> float:
        """Wait for this request's slot; returns how long it waited."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with self._turn:
            try:
                delay = float(await self._reserve(keys=[self._key], args=[repr(self._interval)]))
            except (RedisError, OSError) as exc:
                log.warning("rate limiter unavailable; not limiting", key=self._key, error=str(exc))
                return 0.0
            if delay > 0:
                await asyncio.sleep(delay)
        return loop.time() - started


class Semaphore:
    """At most ``limit`` leases held at once across every process using ``key``."""

    def __init__(self, client: aioredis.Redis, key: str, limit: int, lease_seconds: float) -> None:
        self._client = client
        self._key = key
        self._limit = limit
        self._lease = lease_seconds
        self._acquire = lua.register(client, "ratelimit_acquire")

    async def acquire(self) -> str | None:
        """Wait for a lease; returns its id (None if Redis was unreachable: not limited)."""
        holder = uuid.uuid4().hex
        pause = 0.01
        while True:
            try:
                taken = await self._acquire(
                    keys=[self._key], args=[self._limit, holder, repr(self._lease)]
                )
            except (RedisError, OSError) as exc:
                log.warning("semaphore unavailable; not limiting", key=self._key, error=str(exc))
                return None
            if taken:
                return holder
            await asyncio.sleep(pause * (0.5 + random.random()))  # noqa: S311 - jitter
            pause = min(pause * 2, 0.2)

    async def release(self, holder: str | None) -> None:
        if holder is None:
            return
        try:
            await self._client.zrem(self._key, holder)
        except (RedisError, OSError) as exc:  # the lease expires by itself
            log.warning("semaphore release failed", key=self._key, error=str(exc))
