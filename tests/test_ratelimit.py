"""The shared rate limiter against a real Redis: pacing, and no burst after a stalled loop."""

from __future__ import annotations

import asyncio
import time
import uuid

import redis.asyncio as aioredis

from agentq.ratelimit import RateLimiter

RATE = 20.0  # requests per second: one slot every 50 ms


async def send_times(redis_url: str, requests: int, stall_after: int | None) -> list[float]:
    """When each of ``requests`` concurrent requests was let through; the loop is blocked for
    half a second (as a CPU-starved host would) once ``stall_after`` of them have gone."""
    client = aioredis.Redis.from_url(redis_url)
    limiter = RateLimiter(client, f"test:rate:{uuid.uuid4().hex}", RATE)
    sent: list[float] = []

    async def one() -> None:
        await limiter.wait()
        sent.append(time.monotonic())
        if len(sent) == stall_after:
            time.sleep(0.5)  # noqa: ASYNC251 - the stall is the point

    try:
        await asyncio.gather(*(one() for _ in range(requests)))
    finally:
        await client.aclose()
    return sorted(sent)


def most_in_window(times: list[float], window: float) -> int:
    return max(sum(1 for t in times[i:] if t - start < window) for i, start in enumerate(times))


def test_requests_are_paced_at_the_rate(redis_url: str) -> None:
    times = asyncio.run(send_times(redis_url, 21, stall_after=None))
    elapsed = times[-1] - times[0]
    assert elapsed >= 20 / RATE * 0.95  # 20 intervals between 21 requests
    assert most_in_window(times, 1 / RATE * 0.5) <= 1


def test_a_stalled_loop_does_not_release_a_burst(redis_url: str) -> None:
    # 0.5 s of stall is 10 slots; were each waiting request holding one, ten would go at once.
    times = asyncio.run(send_times(redis_url, 30, stall_after=5))
    assert most_in_window(times, 0.02) <= 2
