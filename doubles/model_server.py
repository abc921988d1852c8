"""An OpenAI-compatible model server for tests, the demo ("offline demo model") and benchmarks.

Serves Chat Completions and Responses (non-streaming, as ``Runner.run`` uses them) with answers
from ``doubles.model_policy``, and can misbehave on purpose: latency, HTTP 429 (with Retry-After)
/500/503, hung requests and dropped connections. It is a plain ASGI app (no framework) because it
must stay cheap per request under benchmark load, and because dropping a connection needs the
server's own ``send``.

It can also enforce a provider's rate limits (``tpm``, ``rpm``; ``ProviderLimits``): tokens and
requests per minute, as token buckets refilled continuously, answering 429 beyond them and
sending OpenAI's ``x-ratelimit-*`` headers on every completion response.

Structured output (an Agent with an ``output_type``) is answered as OpenAI answers it: JSON that
fits the requested schema, and on the Responses API the requested format echoed in ``text``. The
``structured`` knob (``follow``, or ``off_schema`` for free text regardless) lets a test see what
the SDK does with a model that ignores the schema.

Prompt caching (``doubles.prompt_cache``) is modelled as OpenAI does it automatically: a request
that starts with a prefix of 1024 tokens or more served lately, to the same model with the same
``prompt_cache_key``, reports the cached part in ``usage`` (``prompt_tokens_details`` /
``input_tokens_details``). Knobs: ``prompt_caching`` (on by default) and ``cache_ttl_s``.

Service tiers: a request may ask ``service_tier`` (``auto``, ``default``, ``flex``,
``priority``; anything else is a 400) and the answer says which tier served it. With
``flex_unavailable`` every flex request gets OpenAI's 429 ``resource_unavailable`` at once, with
no Retry-After (it is a capacity shortage, not a rate limit), while other tiers are served, so a
test can see a client fall back to the default tier. ``failing_models`` lists model names that
answer 503 whatever the other knobs say, so a test can see a client move to another model.

Admin endpoints: ``GET|POST /_double/config`` (POST merges a JSON object of knobs), ``POST
/_double/reset`` (the start-up knobs, calls cleared, then an optional JSON object of knobs),
``GET /_double/calls``, ``GET /_double/stats``.

    python -m doubles.model_server --port 8002 [--latency-ms 200] [--policy default]
        [--tpm 90000] [--rpm 500] [--structured off_schema] [--no-prompt-caching]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from starlette.types import Receive, Scope, Send

from doubles.asgi import drop_connection, hang, serve
from doubles.model_policy import (
    STRUCTURED_MODES,
    Decision,
    chat_conversation,
    count_tokens,
    decide,
    responses_conversation,
)
from doubles.prompt_cache import PromptCache, block_tokens, prefixes, prompt_blocks

FAULTS = ("none", "http_500", "http_503", "http_429", "hang", "drop")
POLICIES = ("default", "always_tool", "echo", "script")
MODEL_NAMES = ("offline-demo-model", "demo-model")
SERVICE_TIERS = ("auto", "default", "flex", "priority")
FLEX_UNAVAILABLE = (
    "Resource unavailable: flex processing capacity is temporarily short; retry later or use "
    "the default service tier."
)


@dataclass(frozen=True)
class ModelConfig:
    latency_ms: float = 0.0
    fault: str = "none"
    fault_rate: float = 1.0  # chance per request that ``fault`` happens
    fault_first_n: int | None = None  # when set, at most this many more requests fail
    retry_after_s: float = 1.0
    hang_s: float = 3600.0
    policy: str = "default"
    script: list[dict[str, Any]] = field(default_factory=list)
    seed: int | None = None
    api_key: str | None = None
    # What a final answer does when the request asks for a JSON schema: fit it ("follow"), or
    # answer free text anyway ("off_schema"), as a model that ignores the schema would.
    structured: str = "follow"
    # Provider-style limits (0: unlimited): tokens and requests per minute, each a bucket that
    # holds one minute's worth and refills continuously. Setting either (or ``limits_start_empty``)
    # starts the buckets again: full, as a key nobody has used for a minute, or empty, as a key
    # that another client has just used up.
    tpm: int = 0
    rpm: int = 0
    limits_start_empty: bool = False
    # OpenAI's automatic prompt caching (``doubles.prompt_cache``): whether requests report the
    # cached prefix they share with recent ones, and how long a prefix stays cached unused.
    prompt_caching: bool = True
    cache_ttl_s: float = 600.0
    # Every request asking ``service_tier: "flex"`` gets 429 resource_unavailable at once.
    flex_unavailable: bool = False
    # Model names that answer 503 (``model_down``), whatever the other knobs say.
    failing_models: list[str] = field(default_factory=list)

    def merged(self, knobs: dict[str, Any]) -> ModelConfig:
        unknown = set(knobs) - {f for f in asdict(self) if f != "api_key"}
        if unknown:
            raise ValueError(f"unknown knob(s): {', '.join(sorted(unknown))}")
        new = replace(self, **knobs)
        if new.fault not in FAULTS:
            raise ValueError(f"fault must be one of {', '.join(FAULTS)}")
        if new.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}")
        if new.structured not in STRUCTURED_MODES:
            raise ValueError(f"structured must be one of {', '.join(STRUCTURED_MODES)}")
        if not 0.0 <= float(new.fault_rate) <= 1.0:
            raise ValueError("fault_rate must be between 0 and 1")
        if int(new.tpm) < 0 or int(new.rpm) < 0:
            raise ValueError("tpm and rpm must be 0 (unlimited) or more")
        if float(new.cache_ttl_s) < 0:
            raise ValueError("cache_ttl_s must be 0 or more")
        models = new.failing_models
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise ValueError("failing_models must be a list of model names (strings)")
        return new


LIMIT_KNOBS = frozenset({"tpm", "rpm", "limits_start_empty"})


class ProviderLimits:
    """A provider's per-minute limits, as OpenAI enforces them: a request is admitted if its
    tokens (input plus ``max_tokens``/``max_output_tokens``, or the completion it will get) and
    one request fit in what is left; each bucket holds one minute's worth and refills
    continuously. After a 200 the request is charged what it really used (``settle``)."""

    def __init__(self, tpm: int, rpm: int, start_empty: bool) -> None:
        self.tpm, self.rpm = tpm, rpm
        self.tokens = 0.0 if start_empty else float(tpm)
        self.requests = 0.0 if start_empty else float(rpm)
        self.at = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        elapsed, self.at = now - self.at, now
        if self.tpm:
            self.tokens = min(float(self.tpm), self.tokens + elapsed * self.tpm / 60)
        if self.rpm:
            self.requests = min(float(self.rpm), self.requests + elapsed * self.rpm / 60)

    def admit(self, tokens: int) -> float:
        """Take ``tokens`` and one request, or return the seconds until they would fit. A
        request larger than the whole bucket is admitted once the bucket is full."""
        self._refill()
        wait = 0.0
        if self.tpm:
            need = min(float(tokens), float(self.tpm))
            if self.tokens < need:
                wait = (need - self.tokens) * 60 / self.tpm
        if self.rpm and self.requests < 1:
            wait = max(wait, (1 - self.requests) * 60 / self.rpm)
        if wait > 0:
            return wait
        if self.tpm:
            self.tokens -= tokens
        if self.rpm:
            self.requests -= 1
        return 0.0

    def settle(self, charged: int, used: int) -> None:
        """Charge what a request really used instead of what it was admitted with."""
        if self.tpm:
            self._refill()
            self.tokens = min(float(self.tpm), self.tokens + charged - used)

    def headers(self) -> list[tuple[bytes, bytes]]:
        """OpenAI's ``x-ratelimit-*`` headers: each limit, what is left, and how long until
        the bucket is full again."""
        self._refill()
        headers: list[tuple[bytes, bytes]] = []
        for name, limit, level in (
            (b"requests", self.rpm, self.requests),
            (b"tokens", self.tpm, self.tokens),
        ):
            if limit:
                reset = (limit - level) * 60 / limit
                headers += [
                    (b"x-ratelimit-limit-" + name, str(limit).encode()),
                    (b"x-ratelimit-remaining-" + name, str(max(0, math.floor(level))).encode()),
                    (b"x-ratelimit-reset-" + name, duration(reset).encode()),
                ]
        return headers


def duration(seconds: float) -> str:
    """A duration as OpenAI writes it in ``x-ratelimit-reset-*``: ``20ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes >= 1 else text


class ModelState:
    def __init__(self, config: ModelConfig) -> None:
        self.initial = config
        self.reset(config)

    def reset(self, config: ModelConfig) -> None:
        self.config = config
        self.calls: list[dict[str, Any]] = []
        self.first_n_left = config.fault_first_n
        self.rng = random.Random(config.seed)
        self.prompt_cache = PromptCache()
        self._new_limits()

    def _new_limits(self) -> None:
        config = self.config
        self.limits = (
            ProviderLimits(config.tpm, config.rpm, config.limits_start_empty)
            if config.tpm or config.rpm
            else None
        )

    def configure(self, knobs: dict[str, Any]) -> None:
        self.config = self.config.merged(knobs)
        if "fault_first_n" in knobs:
            self.first_n_left = self.config.fault_first_n
        if "seed" in knobs:
            self.rng = random.Random(self.config.seed)
        if LIMIT_KNOBS & set(knobs):
            self._new_limits()

    def pick_fault(self) -> str | None:
        """Same rules as the MCP double: the rate is a chance, ``fault_first_n`` a countdown."""
        config = self.config
        if config.fault == "none":
            return None
        if self.first_n_left is not None and self.first_n_left <= 0:
            return None
        if config.fault_rate < 1.0 and self.rng.random() >= config.fault_rate:
            return None
        if self.first_n_left is not None:
            self.first_n_left -= 1
        return config.fault

    def stats(self) -> dict[str, Any]:
        ok = [c for c in self.calls if c["status"] == 200]
        return {
            "requests": len(self.calls),
            "by_api": dict(Counter(c["api"] for c in self.calls)),
            "by_fault": dict(Counter(c["fault"] for c in self.calls if c["fault"])),
            "rate_limited": sum(1 for c in self.calls if c.get("rate_limited")),
            "input_tokens": sum(c["input_tokens"] for c in ok),
            "output_tokens": sum(c["output_tokens"] for c in ok),
            "cached_tokens": sum(c["cached_tokens"] for c in ok),
            "by_tier": dict(Counter(c["served_tier"] for c in ok)),
        }


def _error(
    message: str, kind: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class ModelApp:
    """The ASGI app; ``state`` holds the knobs and what was asked."""

    def __init__(self, config: ModelConfig) -> None:
        self.state = ModelState(config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if path == "/health":
            return await _json(send, 200, {"status": "ok"})
        if path == "/v1/models" and method == "GET":
            data = [{"id": n, "object": "model", "owned_by": "agentq"} for n in MODEL_NAMES]
            return await _json(send, 200, {"object": "list", "data": data})
        if path.startswith("/_double/"):
            return await self._admin(method, path, receive, send)
        if method == "POST" and path in ("/v1/chat/completions", "/v1/responses"):
            return await self._complete(scope, receive, send, path.endswith("responses"))
        return await _json(send, 404, _error(f"no route {method} {path}", "invalid_request_error"))

    async def _admin(self, method: str, path: str, receive: Receive, send: Send) -> None:
        state = self.state
        if path == "/_double/calls":
            return await _json(send, 200, state.calls)
        if path == "/_double/stats":
            return await _json(send, 200, state.stats())
        if path == "/_double/config" and method == "GET":
            return await _json(send, 200, asdict(state.config))
        body = await _body(receive)
        try:
            knobs = json.loads(body) if body.strip() else {}
            if path == "/_double/config" and method == "POST":
                state.configure(knobs)
            elif path == "/_double/reset" and method == "POST":
                state.reset(state.initial)  # everything as started, like the MCP double
                state.configure(knobs)
            else:
                return await _json(send, 404, {"error": "unknown admin route"})
        except (ValueError, TypeError) as exc:
            return await _json(send, 400, {"error": str(exc)})
        return await _json(send, 200, asdict(state.config))

    async def _complete(self, scope: Scope, receive: Receive, send: Send, responses: bool) -> None:
        state = self.state
        config = state.config
        if config.api_key is not None and _bearer(scope) != config.api_key:
            return await _json(
                send,
                401,
                _error("Incorrect API key provided", "invalid_request_error", "invalid_api_key"),
            )
        raw = await _body(receive)
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
        except ValueError as exc:
            return await _json(
                send, 400, _error(f"invalid JSON body: {exc}", "invalid_request_error")
            )
        if body.get("stream"):
            return await _json(
                send,
                400,
                _error("streaming is not supported by this double", "invalid_request_error"),
            )
        tier = body.get("service_tier")
        if tier is not None and tier not in SERVICE_TIERS:
            supported = ", ".join(f"'{t}'" for t in SERVICE_TIERS)
            return await _json(
                send,
                400,
                _error(
                    f"Invalid value: '{tier}'. Supported values are: {supported}.",
                    "invalid_request_error",
                    "invalid_value",
                    "service_tier",
                ),
            )
        api = "responses" if responses else "chat"
        conversation = responses_conversation(body) if responses else chat_conversation(body)
        record: dict[str, Any] = {
            "t": time.time(),
            "api": api,
            "model": body.get("model"),
            "n_messages": len(body.get("messages") or body.get("input") or []),
            "tools_offered": [
                (t.get("function") or t).get("name") for t in body.get("tools") or []
            ],
            # Which question this request is about, and how many tool results it carries (0:
            # the first turn of a run), so a test can count the runs of each question.
            "question": conversation.question,
            "tool_results": len(conversation.tool_outputs),
            "tool_calls": [],
            "text": None,
            "input_tokens": 0,
            "output_tokens": 0,
            "cached_tokens": 0,
            "prompt_cache_key": body.get("prompt_cache_key"),
            "service_tier": tier,  # as asked
            "served_tier": None,  # as answered (None: not answered)
            "fault": None,
            "status": 200,
        }
        state.calls.append(record)
        if body.get("model") in config.failing_models:
            # A model that is down fails like the http_503 fault, but only for its own name.
            record["fault"] = "model_down"
            if config.latency_ms > 0:
                await asyncio.sleep(config.latency_ms / 1000)
            return await self._fail("http_503", record, receive, send)
        if tier == "flex" and config.flex_unavailable:
            # At once and without Retry-After: OpenAI is short of flex capacity, not limiting
            # this client; waiting a moment is no more likely to help than the default tier.
            record.update(status=429, fault="flex_unavailable")
            error = _error(FLEX_UNAVAILABLE, "resource_unavailable", "resource_unavailable")
            return await _json(send, 429, error)
        limits = state.limits
        fault = state.pick_fault()
        if fault is not None:
            record["fault"] = fault
            if config.latency_ms > 0:
                await asyncio.sleep(config.latency_ms / 1000)
            return await self._fail(fault, record, receive, send)
        decision = decide(conversation, config.policy, config.script, config.structured)
        payload = _responses_payload(body, decision) if responses else _chat_payload(body, decision)
        blocks = prompt_blocks(body, responses)
        tokens = block_tokens(blocks)  # counted once: the input and the cache's prefixes
        # The sum of the blocks' tokens, so a cached prefix is never more than the whole.
        input_tokens = max(1, sum(tokens))
        output_tokens = count_tokens(payload["output"] if responses else payload["choices"])
        charged = 0
        if limits is not None:
            # As a provider admits a request: its input and the most it may write (or, with no
            # maximum given, what it will write), before any work is done.
            cap = body.get("max_output_tokens") or body.get("max_completion_tokens")
            cap = cap or body.get("max_tokens")
            charged = input_tokens + (int(cap) if isinstance(cap, int) else output_tokens)
            wait = limits.admit(charged)
            if wait > 0:
                return await self._rate_limited(record, wait, limits, send)
        cached_tokens = 0
        if config.prompt_caching:
            key = body.get("prompt_cache_key") or ""
            prompt = prefixes(body.get("model"), key, blocks, tokens)
            cached_tokens = state.prompt_cache.serve(prompt, config.cache_ttl_s)
        if config.latency_ms > 0:
            await asyncio.sleep(config.latency_ms / 1000)
        served_tier = "default" if tier in (None, "auto") else tier
        payload["service_tier"] = served_tier
        payload["usage"] = _usage(input_tokens, output_tokens, cached_tokens, responses)
        record.update(
            tool_calls=[{"name": c.name, "arguments": c.arguments} for c in decision.tool_calls],
            text=decision.text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=cached_tokens,
            served_tier=served_tier,
        )
        headers: list[tuple[bytes, bytes]] = []
        if limits is not None:
            limits.settle(charged, input_tokens + output_tokens)
            headers = limits.headers()
        await _json(send, 200, payload, headers)

    async def _rate_limited(
        self, record: dict[str, Any], wait: float, limits: ProviderLimits, send: Send
    ) -> None:
        """A 429 as OpenAI sends it when a limit is reached: at once, with when to retry."""
        record.update(status=429, rate_limited=True)
        headers = [
            (b"retry-after", str(math.ceil(wait)).encode()),
            (b"retry-after-ms", str(math.ceil(wait * 1000)).encode()),
            *limits.headers(),
        ]
        error = _error(
            f"Rate limit reached; please try again in {duration(wait)}.",
            "tokens" if limits.tpm else "requests",
            "rate_limit_exceeded",
        )
        await _json(send, 429, error, headers)

    async def _fail(self, fault: str, record: dict[str, Any], receive: Receive, send: Send) -> None:
        if fault == "drop":
            record["status"] = 0
            return await drop_connection(receive, send)
        if fault == "hang":
            record["status"] = 0
            if await hang(receive, send, self.state.config.hang_s):
                await _json(send, 504, _error("hung request released", "server_error"))
            return None
        if fault == "http_429":
            record["status"] = 429
            retry_after = self.state.config.retry_after_s
            headers = [
                (b"retry-after", f"{retry_after:g}".encode()),
                (b"retry-after-ms", f"{retry_after * 1000:.0f}".encode()),
            ]
            error = _error("Rate limit reached", "rate_limit_exceeded", "rate_limit_exceeded")
            return await _json(send, 429, error, headers)
        status = 503 if fault == "http_503" else 500
        record["status"] = status
        return await _json(send, status, _error("The server had an error", "server_error"))


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def _chat_payload(body: dict[str, Any], decision: Decision) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": decision.text}
    if decision.tool_calls:
        message["tool_calls"] = [
            {
                "id": _new_id("call_"),
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in decision.tool_calls
        ]
    return {
        "id": _new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or MODEL_NAMES[0],
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if decision.tool_calls else "stop",
                "logprobs": None,
            }
        ],
    }


def _responses_payload(body: dict[str, Any], decision: Decision) -> dict[str, Any]:
    output: list[dict[str, Any]] = [
        {
            "type": "function_call",
            "id": _new_id("fc_"),
            "call_id": _new_id("call_"),
            "name": call.name,
            "arguments": json.dumps(call.arguments),
            "status": "completed",
        }
        for call in decision.tool_calls
    ]
    if decision.text is not None:
        output.append(
            {
                "type": "message",
                "id": _new_id("msg_"),
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": decision.text, "annotations": []}],
            }
        )
    return {
        "id": _new_id("resp_"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": body.get("model") or MODEL_NAMES[0],
        "output": output,
        "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "metadata": {},
        "prompt_cache_key": body.get("prompt_cache_key"),
        "temperature": None,
        "top_p": None,
        "text": _text_config(body),
        "truncation": "disabled",
    }


def _text_config(body: dict[str, Any]) -> dict[str, Any]:
    """The output format as OpenAI echoes it: the requested one (a ``json_schema`` for
    structured output), or plain text."""
    requested = body.get("text")
    if isinstance(requested, dict) and isinstance(requested.get("format"), dict):
        return dict(requested)
    return {"format": {"type": "text"}, **(requested if isinstance(requested, dict) else {})}


def _usage(
    input_tokens: int, output_tokens: int, cached_tokens: int, responses: bool
) -> dict[str, Any]:
    if responses:
        return {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
            "input_tokens_details": {"cached_tokens": cached_tokens},
            "output_tokens_details": {"reasoning_tokens": 0},
        }
    return {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            text = value.decode("latin-1")
            return text[7:] if text.lower().startswith("bearer ") else None
    return None


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _json(
    send: Send, status: int, data: Any, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    body = json.dumps(data).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def build_app(config: ModelConfig | None = None) -> ModelApp:
    return ModelApp(config or ModelConfig())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m doubles.model_server",
        description="An OpenAI-compatible model double (the offline demo model).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--policy", choices=POLICIES, default="default")
    parser.add_argument("--script", help="JSON file with a list of steps (policy 'script')")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--api-key", help="accept only this key (default: any)")
    parser.add_argument("--tpm", type=int, default=0, help="tokens per minute (0: unlimited)")
    parser.add_argument("--rpm", type=int, default=0, help="requests per minute (0: unlimited)")
    parser.add_argument(
        "--structured",
        choices=STRUCTURED_MODES,
        default="follow",
        help="fit a requested JSON schema, or answer free text regardless (off_schema)",
    )
    parser.add_argument(
        "--no-prompt-caching",
        dest="prompt_caching",
        action="store_false",
        help="report no cached input tokens (OpenAI's automatic prompt caching off)",
    )
    args = parser.parse_args(argv)
    script: list[dict[str, Any]] = []
    if args.script:
        with open(args.script) as handle:
            script = json.load(handle)
    config = ModelConfig(
        latency_ms=args.latency_ms,
        policy="script" if args.script else args.policy,
        script=script,
        seed=args.seed,
        api_key=args.api_key,
        tpm=args.tpm,
        rpm=args.rpm,
        structured=args.structured,
        prompt_caching=args.prompt_caching,
    )
    serve(build_app(config), args.host, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
