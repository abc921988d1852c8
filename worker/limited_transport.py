"""An HTTP transport that holds a shared slot (``agentq.ratelimit.Semaphore``) per request.

Wrapped around the model client's transport, it caps the model requests all workers keep open.
The slot is held until the response body is closed, not merely until headers arrive, so a
streamed or slow body still counts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2

from agentq.ratelimit import Semaphore


class SlotTransport(httpx2.AsyncBaseTransport):
    def __init__(self, inner: httpx2.AsyncBaseTransport, slots: Semaphore) -> None:
        self._inner = inner
        self._slots = slots

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        holder = await self._slots.acquire()
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException:
            await self._slots.release(holder)
            raise
        response.stream = _ReleasingStream(response.stream, self._slots, holder)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class _ReleasingStream(httpx2.AsyncByteStream):
    def __init__(self, inner: object, slots: Semaphore, holder: str | None) -> None:
        self._inner = inner
        self._slots = slots
        self._holder: str | None = holder
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:  # type: ignore[attr-defined]
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()  # type: ignore[attr-defined]
        finally:
            if not self._released:
                self._released = True
                await self._slots.release(self._holder)
