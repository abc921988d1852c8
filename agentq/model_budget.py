"""The model provider's per-minute limits, as one budget every worker shares through Redis.

A provider such as OpenAI limits a key's tokens per minute (TPM) and requests per minute (RPM),
and answers 429 beyond them; the Agents SDK does nothing about it, and Celery's rate limits are
per worker. So, with ``AGENTQ_MODEL_TOKENS_PER_MINUTE`` / ``AGENTQ_MODEL_REQUESTS_PER_MINUTE``
set, every model request first takes its share of a budget in Redis kept as the provider keeps
its own: two buckets that hold one minute's worth of each limit and refill continuously
(``agentq/lua/model_budget_*.lua``).

- ``take``: before a request is sent it books one request and its estimated tokens
  (``estimate_tokens``), waiting (an async sleep) until the budget has them;
- ``settle``: after the response, the booking is corrected to the tokens the response's usage
  says were used, and what the provider says is left (its ``x-ratelimit-*`` headers) pulls the
  budget down when it is less than agentq thought (another client shares the key), never up;
  after a 429 the budget stays empty for the wait the provider asked for.

Like the other shared limits, it uses Redis's clock, and being limited only delays work: when
Redis cannot be reached a request goes through unbudgeted (logged).
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from agentq import lua
from agentq.logs import get_logger
from agentq.store import KEY_PREFIX

log = get_logger(__name__)

MODEL_BUDGET_KEY = f"{KEY_PREFIX}:limit:model-budget"

# A request's tokens before it is sent: its body's bytes over BYTES_PER_TOKEN (JSON and English
# run 3 to 4 characters a token; 3 errs high, and the excess is given back after the response)
# plus the most it may write (``max_output_tokens``, ``max_completion_tokens`` or ``max_tokens``)
# or, when it sets no maximum, OUTPUT_TOKENS_GUESS.
BYTES_PER_TOKEN = 3
OUTPUT_TOKENS_GUESS = 256
_MAX_TOKENS = re.compile(rb'(?<!\\)"max_(?:output_|completion_)?tokens"\s*:\s*(\d+)')


def estimate_tokens(body: bytes) -> int:
    """What a request will cost against a token limit, from its JSON body alone (no tokenizer,
    no parse: a search for its output maximum)."""
    found = _MAX_TOKENS.search(body)
    output = int(found[1]) if found else OUTPUT_TOKENS_GUESS
    return math.ceil(len(body) / BYTES_PER_TOKEN) + output


@dataclass(frozen=True)
class Booking:
    """What one request took from the budget (``booked`` False: Redis was unreachable)."""

    tokens: int
    booked: bool


@dataclass(frozen=True)
class ProviderSays:
    """What the provider's ``x-ratelimit-*`` headers said (None: not said)."""

    remaining_tokens: int | None = None
    remaining_requests: int | None = None
    limit_tokens: int | None = None
    limit_requests: int | None = None


class ModelBudget:
    """At most ``tokens_per_minute`` tokens and ``requests_per_minute`` requests (0: that limit
    off) across every process using ``key``."""

    def __init__(
        self,
        client: aioredis.Redis,
        key: str,
        tokens_per_minute: int,
        requests_per_minute: int,
    ) -> None:
        self._client = client
        self._key = key
        self._tpm = tokens_per_minute
        self._rpm = requests_per_minute
        self._take = lua.register(client, "model_budget_take")
        self._settle = lua.register(client, "model_budget_settle")
        # One booking at a time per process, first come first served: a request that must wait
        # does not let later ones jump ahead, and a stalled loop wakes one request, not a burst.
        self._turn = asyncio.Lock()

    async def take(self, tokens: int) -> Booking:
        """Wait until the budget has ``tokens`` and one request, and book them."""
        async with self._turn:
            while True:
                try:
                    wait = float(
                        await self._take(keys=[self._key], args=[self._tpm, self._rpm, tokens])
                    )
                except (RedisError, OSError) as exc:
                    log.warning("model budget unavailable; not limiting", error=str(exc))
                    return Booking(tokens, booked=False)
                if wait <= 0:
                    return Booking(tokens, booked=True)
                await asyncio.sleep(wait)

    async def settle(
        self,
        booking: Booking,
        *,
        used_tokens: int | None = None,
        refused: bool = False,
        provider: ProviderSays | None = None,
        hold_seconds: float = 0.0,
    ) -> None:
        """Correct ``booking`` once the response is in: ``used_tokens`` from its usage (None:
        keep the estimate), ``refused`` when the provider did not count it (a 429), what the
        provider says is left and its limits, and ``hold_seconds`` during
        which nothing more may be booked (a 429's wait)."""
        if not booking.booked:
            return
        said = provider or ProviderSays()
        give_back = booking.tokens if refused else 0
        if used_tokens is not None and not refused:
            give_back = booking.tokens - used_tokens
        args = [
            self._tpm,
            self._rpm,
            give_back,
            1 if refused else 0,
            _or_unknown(said.remaining_tokens),
            _or_unknown(said.remaining_requests),
            _or_unknown(said.limit_tokens),
            _or_unknown(said.limit_requests),
            repr(max(0.0, hold_seconds)),
        ]
        try:
            await self._settle(keys=[self._key], args=args)
        except (RedisError, OSError) as exc:
            log.warning("model budget unavailable; booking not corrected", error=str(exc))


def _or_unknown(value: int | None) -> int:
    return -1 if value is None else max(0, value)
