"""An HTTP transport that retries flex requests the provider has no capacity for, then asks default.

Flex processing costs about half, and when the provider is short of capacity it answers such a
request 429 "resource unavailable": not a rate limit (waiting for a budget would not help, and
no ``retry-after`` says how long), and not worth a job's retry either. So a request sent with
``"service_tier": "flex"`` that meets it is sent again after a backoff (``flex_backoff_seconds``,
doubling), up to ``flex_tries`` tries in all, and then once more with ``"service_tier":
"default"``. The OpenAI client above sees the answer of whichever try succeeded, and the tier
that served it is in that answer (``worker.model_client`` notes it for the trace).

Outermost of the model client's transports, so each try books the shared model budget and a
concurrency slot afresh, and holds neither while it waits.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2

from agentq.logs import get_logger
from worker.failures import CURRENT_JOB
from worker.raw_body import decoded, read_raw, with_body

log = get_logger(__name__)

_FLEX = b'"flex"'
UNAVAILABLE_CODES = frozenset({"resource_unavailable", "resource_exhausted"})


def asks_flex(body: bytes) -> bool:
    """Whether a JSON request body asks for the flex tier (parsed only when it may)."""
    if _FLEX not in body:
        return False
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("service_tier") == "flex"


def no_capacity(status: int, body: bytes) -> bool:
    """Whether an answer is the provider's "resource unavailable" for flex (a 429 whose error
    says so), as opposed to a rate limit or an exhausted quota."""
    if status != 429:
        return False
    try:
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        return False
    if not isinstance(error, dict):
        return False
    text = f"{error.get('code') or ''} {error.get('type') or ''} {error.get('message') or ''}"
    lowered = text.lower()
    return any(code in lowered for code in UNAVAILABLE_CODES) or "resource unavailable" in lowered


def at_default_tier(request: httpx2.Request, body: bytes) -> httpx2.Request:
    """``request`` again, asking the default tier instead of flex."""
    data: dict[str, Any] = json.loads(body)
    data["service_tier"] = "default"
    content = json.dumps(data, separators=(",", ":")).encode()
    headers = httpx2.Headers(request.headers)
    headers["content-length"] = str(len(content))
    return httpx2.Request(
        request.method, request.url, headers=headers, content=content,
        extensions=request.extensions,
    )  # fmt: skip


class FlexTransport(httpx2.AsyncBaseTransport):
    def __init__(self, inner: httpx2.AsyncBaseTransport, tries: int, backoff: float) -> None:
        self._inner = inner
        self._tries = max(1, tries)
        self._backoff = max(0.0, backoff)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        if not asks_flex(body):
            return await self._inner.handle_async_request(request)
        for attempt in range(1, self._tries + 1):
            response = await self._inner.handle_async_request(request)
            if response.status_code != 429:
                return response
            raw = await read_raw(response)
            try:
                readable = decoded(raw, response.headers)
            except httpx2.DecodingError:
                readable = b""
            if not no_capacity(429, readable):
                return with_body(response, raw)
            if attempt < self._tries:
                wait = self._backoff * 2 ** (attempt - 1)
                log.info("flex has no capacity; trying again", wait_s=wait, attempt=attempt)
                await asyncio.sleep(wait)
        job = CURRENT_JOB.get()
        if job is not None:
            job.http_error("model", request.url.path, "flex unavailable; sent at default", True)
        log.info("flex has no capacity; sending at the default tier", tries=self._tries)
        return await self._inner.handle_async_request(at_default_tier(request, body))

    async def aclose(self) -> None:
        await self._inner.aclose()
