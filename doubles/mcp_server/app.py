"""The MCP double as an ASGI app: the ``/mcp`` endpoint behind a gate, and the admin endpoints.

Every request to ``/mcp`` passes the gate before the MCP SDK's session manager sees it: the gate
records it (tokens scrubbed), applies the latency knob, refuses it as a gateway would (HTTP 401
for a bad token in gateway mode, or an injected HTTP error), drops or hangs the connection, or
marks it over the rate limit, then hands it on and watches the reply to record the outcome. The
admin endpoints (``/health``, ``/_double/config``, ``/_double/reset``, ``/_double/inventory``,
``/_double/calls``, ``/_double/stats``) let a test change the knobs and the dataset, and read
what the double saw (the package docstring has their shapes).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import anyio
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from doubles.asgi import drop_connection, hang
from doubles.mcp_server.auth import bearer_token, classify_token, header
from doubles.mcp_server.config import MCP_PATH, DoubleConfig
from doubles.mcp_server.server import InfrahubMcpDouble
from doubles.mcp_server.state import SCOPE_KEY, CallRecord, DoubleState, RequestVerdict
from doubles.mcp_server.wire import json_text

__all__ = ["DoubleApp", "build_app"]

# The injected HTTP faults: status and body text of "a proxy in front of the server".
_HTTP_FAULTS: dict[str, tuple[int, str]] = {
    "http_503": (503, "service unavailable"),
    "http_502": (502, "bad gateway"),
    "http_429": (429, "too many requests"),
    "http_401": (401, "unauthorized"),
    "http_403": (403, "forbidden"),
}


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole request body, however many chunks it came in; False if the client left."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), False
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the already-read body once, then defers to the real one."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _scrub(value: Any, secrets: Sequence[str]) -> Any:
    """``value`` with every occurrence of a token replaced (tokens never reach the records)."""
    if isinstance(value, str):
        for secret in secrets:
            if secret:
                value = value.replace(secret, "[redacted]")
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    return value


def _reply_error(body: bytes, content_type: str) -> tuple[bool, int | None]:
    """Whether a reply body carries a JSON-RPC error (or an ``isError`` result), and its code."""
    payloads: list[str] = []
    if content_type.startswith("text/event-stream"):
        text = body.decode("utf-8", "replace")
        payloads = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
    elif body:
        payloads = [body.decode("utf-8", "replace")]
    for payload in payloads:
        try:
            message = json.loads(payload)
        except ValueError:
            continue
        if not isinstance(message, dict):
            continue
        error = message.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            return True, code if isinstance(code, int) else None
        result = message.get("result")
        if isinstance(result, dict) and result.get("isError") is True:
            return True, None
    return False, None


class DoubleApp:
    """The ASGI application: the MCP endpoint behind the fault/auth/recording gate, plus admin.

    It is the outermost ASGI callable on purpose: the ``drop`` fault needs the server's own
    ``send`` to reach the connection, which Starlette's middleware would wrap.
    """

    def __init__(self, config: DoubleConfig) -> None:
        self.state = DoubleState(config)
        self.mcp = InfrahubMcpDouble(self.state)
        self.server = self.mcp.build_server()
        self.session_manager = StreamableHTTPSessionManager(
            app=self.server, json_response=config.json_response, stateless=False
        )
        self.admin = Starlette(
            routes=[
                Route("/health", self._health, methods=["GET"]),
                Route("/_double/config", self._config, methods=["GET", "POST"]),
                Route("/_double/reset", self._reset, methods=["POST"]),
                Route("/_double/inventory", self._inventory, methods=["POST"]),
                Route("/_double/calls", self._calls, methods=["GET"]),
                Route("/_double/stats", self._stats, methods=["GET"]),
            ],
            lifespan=lambda app: self.session_manager.run(),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/") == MCP_PATH:
            await self._mcp(scope, receive, send)
        else:
            await self.admin(scope, receive, send)

    # --- admin endpoints --------------------------------------------------------------------

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _knobs(self, request: Request) -> Mapping[str, Any] | Response:
        raw = await request.body()
        if not raw.strip():
            return {}
        try:
            knobs = json.loads(raw)
        except ValueError:
            return JSONResponse({"error": "the body must be a JSON object"}, status_code=400)
        if not isinstance(knobs, dict):
            return JSONResponse({"error": "the body must be a JSON object"}, status_code=400)
        return knobs

    async def _config(self, request: Request) -> Response:
        if request.method == "POST":
            knobs = await self._knobs(request)
            if isinstance(knobs, Response):
                return knobs
            try:
                self.state.configure(knobs)
            except ValueError as error:
                return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(self.state.config.public())

    async def _reset(self, request: Request) -> Response:
        knobs = await self._knobs(request)
        if isinstance(knobs, Response):
            return knobs
        try:
            self.state.config.with_knobs(knobs)  # refuse bad knobs before resetting anything
        except ValueError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        self.state.reset()
        self.state.configure(knobs)
        return JSONResponse(self.state.config.public())

    async def _inventory(self, request: Request) -> Response:
        body = await self._knobs(request)
        if isinstance(body, Response):
            return body
        try:
            changed = self.state.change_inventory(body.get("changes"))
        except ValueError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(changed)

    async def _calls(self, request: Request) -> Response:
        return JSONResponse([asdict(r) for r in self.state.records])

    async def _stats(self, request: Request) -> Response:
        return JSONResponse(self.state.stats())

    # --- the /mcp gate ----------------------------------------------------------------------

    async def _mcp(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        method = scope["method"]
        token = bearer_token(scope)
        record = CallRecord(
            t=time.time(),
            method=method,
            session=header(scope, b"mcp-session-id"),
            auth=classify_token(state.config, token),
        )
        state.records.append(record)
        verdict = RequestVerdict(record=record, token=token)
        if method != "POST":
            if state.config.auth_mode == "gateway" and record.auth != "ok":
                await self._refuse(send, record, 401, "unauthorized")
                return
            await self._forward(scope, receive, send, verdict, observe_body=False)
            return
        body, connected = await _read_body(receive)
        is_request = self._describe(record, body, token)
        if not connected:
            record.outcome = "error"
            return
        if state.config.latency_ms > 0:
            await anyio.sleep(state.config.latency_ms / 1000)
        if state.config.auth_mode == "gateway" and record.auth != "ok":
            await self._refuse(send, record, 401, "unauthorized")
            return
        fault = state.pick_fault(record.method, is_request)
        record.fault = fault
        if fault in _HTTP_FAULTS:
            status, text = _HTTP_FAULTS[fault]
            await self._refuse(send, record, status, text)
            return
        if fault == "drop":
            record.outcome = "error"
            await drop_connection(receive, send)
            return
        if fault == "hang" and not await hang(receive, send, state.config.hang_s):
            record.outcome = "error"
            return
        if fault == "jsonrpc_rate_limit" or (state.bucket is not None and not state.bucket.take()):
            verdict.rate_limited = is_request
        await self._forward(scope, _replaying(body, receive), send, verdict, observe_body=True)

    def _describe(self, record: CallRecord, body: bytes, token: str | None) -> bool:
        """Fill the record from the JSON-RPC message; True if it is a request (has an id)."""
        try:
            message = json.loads(body)
        except ValueError:
            record.method = "(unparsable)"
            return False
        if isinstance(message, list):  # a batch: describe it by its first message
            message = message[0] if message else {}
        if not isinstance(message, dict):
            record.method = "(unparsable)"
            return False
        secrets = [*self.state.config.tokens, *([token] if token else [])]
        method = message.get("method")
        record.method = method if isinstance(method, str) else "(response)"
        params = message.get("params")
        params = params if isinstance(params, dict) else {}
        if record.method == "tools/call":
            name = params.get("name")
            record.tool = name if isinstance(name, str) else None
            record.arguments = _scrub(params.get("arguments") or {}, secrets)
        elif record.method == "prompts/get":
            record.target = _scrub(params.get("name"), secrets)
            record.arguments = _scrub(params.get("arguments") or {}, secrets)
        elif record.method == "resources/read":
            record.target = _scrub(params.get("uri"), secrets)
        return "id" in message and isinstance(method, str)

    async def _refuse(self, send: Send, record: CallRecord, status: int, text: str) -> None:
        """A plain HTTP error from "a proxy in front of the server" (no MCP handling at all)."""
        headers = [(b"content-type", b"application/json")]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="infrahub-mcp"'))
        retry_after = self.state.config.retry_after_s
        if status == 429 and retry_after is not None:
            headers.append((b"retry-after", str(math.ceil(retry_after)).encode()))
        body = json_text({"error": text}).encode()
        headers.append((b"content-length", str(len(body)).encode()))
        record.outcome, record.http_status = "error", status
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        verdict: RequestVerdict,
        observe_body: bool,
    ) -> None:
        """Hand the request to the SDK's session manager; watch the reply to record the outcome."""
        record = verdict.record
        scope[SCOPE_KEY] = verdict
        captured = bytearray()
        content_type = ""

        async def watching_send(message: Message) -> None:
            nonlocal content_type
            if message["type"] == "http.response.start":
                record.http_status = int(message["status"])
                headers = {bytes(k).lower(): bytes(v) for k, v in message.get("headers", [])}
                content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
                if record.session is None and b"mcp-session-id" in headers:
                    record.session = headers[b"mcp-session-id"].decode("latin-1")
                if not observe_body or record.http_status >= 400:
                    record.outcome = "error" if record.http_status >= 400 else "ok"
            elif message["type"] == "http.response.body" and observe_body and len(captured) < 4e6:
                captured.extend(message.get("body", b""))
            await send(message)

        try:
            await self.session_manager.handle_request(scope, receive, watching_send)
        finally:
            if record.outcome == "pending":
                failed, code = _reply_error(bytes(captured), content_type)
                record.outcome = "error" if failed or record.http_status is None else "ok"
                record.error_code = code


def build_app(config: DoubleConfig | None = None) -> DoubleApp:
    """The double as an ASGI app.

    Its ASGI lifespan starts the MCP session manager, so serve it with a server that runs
    lifespans (uvicorn does). In-process without one (e.g. ``httpx.ASGITransport``), wrap the
    requests in ``async with app.session_manager.run():``. ``app.state`` holds the knobs, the
    dataset and the recorded calls.
    """
    return DoubleApp(config or DoubleConfig())
