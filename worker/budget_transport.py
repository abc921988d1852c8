"""An HTTP transport that spends the shared model budget (``agentq.model_budget.ModelBudget``).

Wrapped around the model client's transport (outside the concurrency slots, so a request
waiting for budget holds no slot). For each request it

- books the request's estimated tokens and one request, waiting until the budget has them;
- passes the response through untouched, reading its usage on the way (the body is buffered as
  the OpenAI client reads it, then parsed once it has all been read) to correct the booking,
  and reads the provider's ``x-ratelimit-*`` headers, which may lower the budget;
- on a 429 for a rate limit (not ``insufficient_quota``, which waiting does not cure) waits what
  the provider asks (``retry-after-ms``, ``retry-after``, else the ``x-ratelimit-reset-*``
  headers), holds the budget empty meanwhile so other requests wait too, and sends the request
  again, so neither the OpenAI client's retries nor the job's attempts are spent on being
  limited. At most ``max_resends`` times, and not past ``max_wait_seconds`` of waiting: an
  endpoint that always answers 429 still ends.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import cast

import httpx2

from agentq.logs import get_logger
from agentq.model_budget import Booking, ModelBudget, ProviderSays, estimate_tokens
from worker.failures import parse_retry_after
from worker.raw_body import decoded, read_raw, with_body
from worker.tier_transport import no_capacity

log = get_logger(__name__)

# The most of a response body kept to read its usage (a non-streamed answer is far smaller).
MAX_BUFFERED_BYTES = 8 * 1024 * 1024
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | None) -> float | None:
    """Seconds in a duration as OpenAI writes it (``6m0s``, ``1.5s``, ``20ms``; a bare number
    is seconds); None when there is none."""
    seconds = parse_retry_after(text)
    if seconds is not None or not text:
        return seconds
    parts = _DURATION_PART.findall(text)
    if not parts:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def _int_header(headers: httpx2.Headers, name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def retry_wait(headers: httpx2.Headers) -> float | None:
    """How long a 429 asks to wait: ``retry-after-ms``, ``retry-after`` (seconds), or, without
    either, the longer of the ``x-ratelimit-reset-*`` durations."""
    milliseconds = parse_retry_after(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    seconds = parse_duration(headers.get("retry-after"))
    if seconds is not None:
        return seconds
    resets = [
        parse_duration(headers.get(f"x-ratelimit-reset-{kind}")) for kind in ("tokens", "requests")
    ]
    known = [r for r in resets if r is not None]
    return max(known) if known else None


def usage_tokens(body: bytes, content_type: str) -> int | None:
    """Tokens a response says it used: Chat Completions ``prompt_tokens + completion_tokens``,
    Responses ``input_tokens + output_tokens`` (a streamed answer: its last event with a usage);
    None when it says nothing."""
    if "text/event-stream" in content_type:
        for line in reversed(body.splitlines()):
            if line.startswith(b"data:") and b'"usage"' in line:
                found = _usage_of(line[5:])
                if found is not None:
                    return found
        return None
    return _usage_of(body)


def _usage_of(text: bytes) -> int | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    usage = data.get("usage")
    if usage is None and isinstance(data.get("response"), dict):
        usage = data["response"].get("usage")  # a Responses stream's response.completed
    if not isinstance(usage, dict):
        return None
    pairs = (("input_tokens", "output_tokens"), ("prompt_tokens", "completion_tokens"))
    for first, second in pairs:
        if isinstance(usage.get(first), int):
            return int(usage[first]) + int(usage.get(second) or 0)
    total = usage.get("total_tokens")
    return int(total) if isinstance(total, int) else None


class BudgetTransport(httpx2.AsyncBaseTransport):
    def __init__(
        self,
        inner: httpx2.AsyncBaseTransport,
        budget: ModelBudget,
        *,
        max_resends: int = 50,
        max_wait_seconds: float = 600.0,
    ) -> None:
        self._inner = inner
        self._budget = budget
        self._max_resends = max_resends
        self._max_wait = max_wait_seconds

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        tokens = estimate_tokens(body)
        waited = 0.0
        resends = 0
        while True:
            booking = await self._budget.take(tokens)
            try:
                response = await self._inner.handle_async_request(request)
            except (httpx2.ConnectError, httpx2.ConnectTimeout):
                await self._budget.settle(booking, refused=True)  # it never reached the model
                raise
            if response.status_code != 429:
                response.stream = _SettlingStream(response, self._budget, booking)
                return response
            raw = await read_raw(response)
            wait = retry_wait(response.headers)
            limited = _is_rate_limit(raw, response.headers)
            await self._budget.settle(
                booking,
                refused=True,
                hold_seconds=(wait or 0.0) if limited else 0.0,
                provider=provider_says(response.headers),
            )
            if not limited or wait is None or resends >= self._max_resends:
                return with_body(response, raw)
            if waited + wait > self._max_wait:
                return with_body(response, raw)
            resends += 1
            waited += wait
            log.info(
                "model endpoint is rate limiting; waiting, then sending again",
                wait_s=round(wait, 3),
                resend=resends,
                path=request.url.path,
            )
            await asyncio.sleep(wait)

    async def aclose(self) -> None:
        await self._inner.aclose()


def provider_says(headers: httpx2.Headers) -> ProviderSays:
    """The provider's ``x-ratelimit-remaining-*`` and ``x-ratelimit-limit-*`` figures."""
    return ProviderSays(
        remaining_tokens=_int_header(headers, "x-ratelimit-remaining-tokens"),
        remaining_requests=_int_header(headers, "x-ratelimit-remaining-requests"),
        limit_tokens=_int_header(headers, "x-ratelimit-limit-tokens"),
        limit_requests=_int_header(headers, "x-ratelimit-limit-requests"),
    )


def _is_rate_limit(raw: bytes, headers: httpx2.Headers) -> bool:
    """Whether a 429 is a rate limit, which passes, rather than an exhausted quota, which does
    not (OpenAI's ``insufficient_quota``), or flex without capacity, which the flex transport
    handles (``worker.tier_transport``)."""
    try:
        body = decoded(raw, headers)
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError, httpx2.DecodingError):
        return True
    if no_capacity(429, body):
        return False
    return not (isinstance(error, dict) and error.get("code") == "insufficient_quota")


class _SettlingStream(httpx2.AsyncByteStream):
    """The response's own stream, passed through chunk by chunk; once it has all been read, its
    usage and the provider's headers settle the booking."""

    def __init__(self, response: httpx2.Response, budget: ModelBudget, booking: Booking) -> None:
        self._inner = cast(httpx2.AsyncByteStream, response.stream)
        self._headers = response.headers
        self._budget = budget
        self._booking = booking
        self._chunks: list[bytes] = []
        self._size = 0
        self._settled = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            if self._size <= MAX_BUFFERED_BYTES:
                self._chunks.append(chunk)
                self._size += len(chunk)
            yield chunk
        await self._settle(complete=self._size <= MAX_BUFFERED_BYTES)

    async def _settle(self, complete: bool) -> None:
        if self._settled:
            return
        self._settled = True
        used: int | None = None
        if complete:
            try:
                body = decoded(b"".join(self._chunks), self._headers)
                used = usage_tokens(body, self._headers.get("content-type", ""))
            except httpx2.DecodingError:
                used = None
        self._chunks = []
        await self._budget.settle(
            self._booking, used_tokens=used, provider=provider_says(self._headers)
        )

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if not self._settled:  # never read to the end: keep the estimate, heed the headers
                await self._settle(complete=False)
