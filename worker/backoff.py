"""How long to wait before trying again: exponential backoff with full jitter.

Full jitter (a uniform draw between zero and the exponential bound) spreads the retries of many
jobs that failed together, so a recovering service is not hit by all of them at once. A service
that said when to come back (Retry-After) is believed, up to an hour.
"""

from __future__ import annotations

import random

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
