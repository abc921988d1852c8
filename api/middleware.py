"""The API's edge, as small pure-ASGI middlewares: a body limit, metrics and security headers.

Pure ASGI rather than ``@app.middleware("http")``: the body limit must see each chunk the server
hands over (a chunked body has no Content-Length to check), and the others must see every
response, the body limit's 413 included.
"""

from __future__ import annotations

import time

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentq.errors import ErrorCode
from agentq.metrics import HTTP_DURATION, HTTP_REQUESTS, http_labels

# Every response gets these; a route that serves a page sets its own Content-Security-Policy.
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
# JSON, CSV, Markdown, metrics: nothing in them may load or run anything, nor be framed.
DATA_CSP = "default-src 'none'; frame-ancestors 'none'"


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Answer 413 once a request body passes ``max_bytes``, however it is framed.

    A declared Content-Length over the limit is refused before anything runs. Otherwise the
    bytes are counted as the app reads them: past the limit the read fails, whatever the app then
    answers is dropped, and the client gets the 413 with ``Connection: close``, so the server
    stops reading the rest instead of draining it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._too_large(scope, receive, send)
            return
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise _BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app's answer to a body cut short; the 413 replaces it
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            ErrorCode.BAD_REQUEST,
            f"the request body is over {self.max_bytes} bytes (AGENTQ_API_MAX_BODY_BYTES)",
            headers={"connection": "close"},
        )
        await response(scope, receive, send)


class Measure:
    """Count each request and its duration, with labels from fixed sets (``http_labels``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # unless a response starts: an exception escaped
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            template = getattr(scope.get("route"), "path", None)
            method, route, code = http_labels(scope["method"], template, status)
            HTTP_REQUESTS.labels(method, route, code).inc()
            HTTP_DURATION.labels(method, route).observe(time.perf_counter() - started)


class SecurityHeaders:
    """Add ``SECURITY_HEADERS`` to every response, and ``DATA_CSP`` unless it set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_security_headers(MutableHeaders(scope=message))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def add_security_headers(headers: MutableHeaders) -> None:
    for name, value in SECURITY_HEADERS.items():
        headers[name] = value
    headers.setdefault("content-security-policy", DATA_CSP)
