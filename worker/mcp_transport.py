"""Retrying one MCP HTTP request that failed in a way worth retrying, inside an attempt.

A gateway's 502/503/504, a 429, a refused or dropped connection: each is usually over in a moment,
and retrying the single request is far cheaper than rerunning the whole agent. Requests that
still fail after ``retries`` reach the SDK as usual and fail the attempt (which may be retried as
a whole). Every failed exchange is noted for the job's trace.

A request that may have reached the server is sent again only if doing it twice is harmless:
every request but a tool call, and a tool call only of a read tool (``resendable``). A dropped
connection, a 502/503/504 from a gateway can mean the server did the work without answering, so a
write tool's call is resent only when it provably never arrived: the connection was never made,
or the server refused it (429). Otherwise the failure ends the attempt, and the job's retry
policy (or its owner) decides.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx2

from agentq.ratelimit import RateLimiter
from worker.failures import parse_retry_after
from worker.retries import retry_delay

RETRY_STATUSES = frozenset({429, 502, 503, 504})
RETRY_ERRORS = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.RemoteProtocolError)
# Failures after which the server has provably not seen the request.
NEVER_SENT_ERRORS = (httpx2.ConnectError, httpx2.ConnectTimeout)
NEVER_RUN_STATUSES = frozenset({429})
BASE_SECONDS = 0.2
CAP_SECONDS = 2.0
# A Retry-After longer than this is left to the job-level retry, which does not hold a session.
LONGEST_WAIT_SECONDS = 5.0

OnFailure = Callable[[str | None, str, bool], None]


class RetryingTransport(httpx2.AsyncBaseTransport):
    """Wraps a transport; retries transient failures with jittered backoff.

    Every request sent, retries included, first waits for its turn under the shared MCP rate
    limit (``limiter``), when one is set. A ``shared`` inner transport (the loop's connection
    pool) is not closed with this one.
    """

    def __init__(
        self,
        inner: httpx2.AsyncBaseTransport,
        retries: int,
        on_failure: OnFailure,
        limiter: RateLimiter | None = None,
        resendable: Callable[[str], bool] | None = None,
        shared: bool = False,
    ) -> None:
        self._inner = inner
        self._retries = retries
        self._on_failure = on_failure
        self._limiter = limiter
        self._resendable = resendable or (lambda _tool: True)
        self._shared = shared

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        method, tool = _jsonrpc_call(request)
        harmless_twice = method != "tools/call" or (tool is not None and self._resendable(tool))
        attempt = 0
        while True:
            attempt += 1
            can_retry = attempt <= self._retries
            if self._limiter is not None:
                await self._limiter.wait()
            try:
                response = await self._inner.handle_async_request(request)
            except RETRY_ERRORS as exc:
                can_retry = can_retry and (harmless_twice or isinstance(exc, NEVER_SENT_ERRORS))
                self._on_failure(method, type(exc).__name__, can_retry)
                if not can_retry:
                    raise
                await asyncio.sleep(retry_delay(attempt, BASE_SECONDS, CAP_SECONDS))
                continue
            if response.status_code not in RETRY_STATUSES:
                return response
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            wait = retry_delay(attempt, BASE_SECONDS, CAP_SECONDS, retry_after)
            can_retry = (
                can_retry
                and wait <= LONGEST_WAIT_SECONDS
                and (harmless_twice or response.status_code in NEVER_RUN_STATUSES)
            )
            self._on_failure(method, f"HTTP {response.status_code}", can_retry)
            if not can_retry:
                return response
            await response.aclose()
            await asyncio.sleep(wait)

    async def aclose(self) -> None:
        if not self._shared:  # a shared pool outlives each job's client (worker.clients)
            await self._inner.aclose()


def _jsonrpc_call(request: httpx2.Request) -> tuple[str | None, str | None]:
    """The JSON-RPC method of a request and, for ``tools/call``, the tool's name."""
    if request.method != "POST":
        return request.method, None
    try:
        payload = json.loads(request.content)
    except (ValueError, httpx2.RequestNotRead):
        return None, None
    if not isinstance(payload, dict):
        return None, None
    method = payload.get("method")
    params = payload.get("params")
    tool = params.get("name") if isinstance(params, dict) else None
    return (
        method if isinstance(method, str) else None,
        tool if isinstance(tool, str) else None,
    )
