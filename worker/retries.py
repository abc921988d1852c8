"""Whether a failed attempt is tried again, and after how long: exponential backoff with jitter.

A job is retried when its error is transient (``agentq.errors``) and it has attempts left: the
setting's ``retry_max_attempts``, lowered for codes where another full run is rarely worth it
(``MAX_ATTEMPTS_BY_CODE``). The retry waits in Redis, not in the worker (``worker.maintenance``).

Full jitter (a uniform draw between zero and the exponential bound) spreads the retries of many
jobs that failed together, so a recovering service is not hit by all of them at once. A service
that said when to come back (Retry-After) is believed, up to an hour.
"""

from __future__ import annotations

import random

from agentq.errors import MAX_ATTEMPTS_BY_CODE, AgentqError
from agentq.settings import Settings

RETRY_AFTER_LIMIT = 3600.0


def backoff_bound(attempt: int, base: float, cap: float) -> float:
    """The most to wait after failed attempt number ``attempt`` (1-based)."""
    return float(min(cap, base * (2.0 ** max(0, attempt - 1))))


def retry_delay(
    attempt: int,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    draw = (rng or random).uniform(0.0, backoff_bound(attempt, base, cap))
    if retry_after is not None:
        return max(draw, min(retry_after, RETRY_AFTER_LIMIT))
    return draw


def retry_in(error: AgentqError, attempt: int, config: Settings) -> float | None:
    """Seconds until failed attempt number ``attempt`` is tried again; None if it is not."""
    max_attempts = min(config.retry_max_attempts, MAX_ATTEMPTS_BY_CODE.get(error.code, 10**6))
    if not error.transient or attempt >= max_attempts:
        return None
    return retry_delay(
        attempt, config.retry_base_seconds, config.retry_cap_seconds, error.retry_after
    )
