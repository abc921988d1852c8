"""A stand-in for the Infrahub MCP server (infrahub-mcp 1.2.0): tests, ``make demo``, benchmarks.

Why a double: the worker must be tested against what the real server does on the wire, including
how it fails, without an Infrahub instance, and fast enough to run on every commit. So this server
is built on the same MCP SDK (v2.3, low-level ``Server`` plus its Streamable HTTP session manager)
and copies the parts of 1.2.0 a client can observe:

- ``tools/list`` answers the real server's tool definitions verbatim
  (``data/infrahub-mcp-1.2.0-tools.json``); prompts and resources have the real names, arguments
  and MIME types.
- Both protocol eras, exactly as the SDK serves them for the real server: a client that sends
  ``initialize`` gets a stateful session (``mcp-session-id``, SSE-framed replies unless
  ``--json-response``); a 2026-07-28 client (the MCP SDK 2.3 client, hence the Agents SDK) probes
  ``server/discover`` and then sends self-contained requests with no session, answered as JSON.
- Failures carry the real codes and texts: tool errors are JSON-RPC -32603
  ``Internal error: <what>\\n\\nRemediation: <hint>``, an unknown tool -32001, bad arguments -32602,
  a write tool in read-only mode -32601, the global rate limit -32000, a missing passthrough token
  -32001, and a token Infrahub rejects -32603 ``... Client error '401 Unauthorized' for url ...``
  (in passthrough mode that concerns tool calls and resource reads only; the handshake,
  listings and prompts need no token, as on the real server). Handshake
  clients get them inside HTTP 200 replies; for 2026-07-28 requests the SDK maps -32602 to HTTP
  400 and -32601 to 404, as it does for the real server. ``--error-style isError`` returns tool
  failures as ``isError`` results instead, like 1.1.x.
- Tools answer from a small deterministic inventory (``doubles.inventory``).

On top of that, it can misbehave on purpose (latency, HTTP errors from a "gateway", dropped
connections, hangs, rate limiting), configurable at start and at run time, and it records every
request it receives so a test can compare what a client did with what the server saw:

- ``GET /health`` -> ``{"status": "ok"}``
- ``GET|POST /_double/config`` -> the run-time knobs (POST merges a JSON object into them)
- ``POST /_double/reset`` -> back to the start-up knobs and dataset, recorded calls cleared
  (an optional JSON body of knobs is applied afterwards)
- ``GET /_double/calls`` -> every request, in arrival order; ``GET /_double/stats`` -> counts

Tokens are compared, never stored in a record or written to a log (only the ``echo_token`` knob
sends one back, in the reply to the request that carried it).

Run it with ``python -m doubles.mcp_server --port 8001 --token T`` or build it in-process with
:func:`build_app`.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import math
import os
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Literal, get_args

import anyio
import mcp_types as types
from jsonschema import Draft202012Validator
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from doubles.asgi import drop_connection, hang, serve
from doubles.inventory import GraphQLSyntaxError, Inventory, InventoryError, build_inventory
from doubles.inventory.graphql import execute as run_graphql
from doubles.inventory.graphql import graphql_sdl
from doubles.inventory.traversal import find_paths, find_reachable
from doubles.toon import toon_encode

__all__ = [
    "FAULTS",
    "SERVER_VERSION",
    "CallRecord",
    "DoubleApp",
    "DoubleConfig",
    "DoubleState",
    "build_app",
    "load_tool_definitions",
    "main",
]

logger = logging.getLogger("doubles.mcp_server")

SERVER_NAME = "Infrahub MCP Server"
SERVER_VERSION = "1.2.0-double"
# Where the tools pretend Infrahub lives: it appears in error texts, as the real URLs do.
INFRAHUB_ADDRESS = "http://infrahub.double"
DEFAULT_BRANCH = "main"
MCP_PATH = "/mcp"

AuthMode = Literal["gateway", "passthrough", "none"]
ErrorStyle = Literal["jsonrpc", "isError"]
Fault = Literal[
    "none",
    "http_503",
    "http_502",
    "http_429",
    "http_401",
    "http_403",
    "jsonrpc_rate_limit",
    "tool_error",
    "drop",
    "hang",
]
FAULTS: tuple[str, ...] = get_args(Fault)
AUTH_MODES: tuple[str, ...] = get_args(AuthMode)
ERROR_STYLES: tuple[str, ...] = get_args(ErrorStyle)

_HTTP_FAULTS: dict[str, tuple[int, str]] = {
    "http_503": (503, "service unavailable"),
    "http_502": (502, "bad gateway"),
    "http_429": (429, "too many requests"),
    "http_401": (401, "unauthorized"),
    "http_403": (403, "forbidden"),
}

# JSON-RPC codes and texts of infrahub-mcp 1.2.0 (observed against the real server).
RATE_LIMIT_CODE, RATE_LIMIT_TEXT = -32000, "Global rate limit exceeded"
NOT_FOUND_CODE = -32001
NO_TOKEN_TEXT = "Authentication required: no Infrahub API token in request header."  # noqa: S105
GRAPHQL_401_TEXT = "Invalid token"  # Infrahub's answer to an unknown API key on /graphql
RESOURCE_NOT_FOUND_CODE = -32002
METHOD_NOT_FOUND_CODE = -32601
INVALID_PARAMS_CODE = -32602
INTERNAL_ERROR_CODE = -32603

_SCOPE_KEY = "agentq.double"  # where the HTTP layer leaves its verdict for the MCP layer


# --- the real server's tool definitions ----------------------------------------------------


def load_tool_definitions() -> list[dict[str, Any]]:
    """The ``tools/list`` entries of infrahub-mcp 1.2.0, as it sends them."""
    text = (
        resources.files("doubles")
        .joinpath("data", "infrahub-mcp-1.2.0-tools.json")
        .read_text(encoding="utf-8")
    )
    tools: list[dict[str, Any]] = json.loads(text)
    return tools


def _is_write_tool(tool: Mapping[str, Any]) -> bool:
    return not tool.get("annotations", {}).get("readOnlyHint", False)


# --- configuration -------------------------------------------------------------------------


@dataclass(frozen=True)
class DoubleConfig:
    """How the double behaves. ``tokens`` and ``json_response`` are fixed when the app is built;
    every other field is a run-time knob (``POST /_double/config``).

    - ``tokens``: the Infrahub API tokens that count as valid.
    - ``auth_mode``: ``gateway`` (a proxy answers HTTP 401 to any ``/mcp`` request without an
      accepted bearer token), ``passthrough`` (like INFRAHUB_MCP_AUTH_MODE=token-passthrough: only
      tool calls and resource reads need a token, and a wrong one fails as Infrahub's 401 inside
      the MCP reply) or ``none``.
    - ``error_style``: ``jsonrpc`` (1.2.0) or ``isError`` (tool failures as results, like 1.1.x).
    - ``latency_ms``: delay before every ``/mcp`` POST is handled; ``tool_latency_ms``: extra delay
      inside ``tools/call``.
    - ``fault``: what to do to matching POSTs instead of answering (see :data:`FAULTS`);
      ``fault_methods`` (JSON-RPC methods; empty = every POST) select them, ``fault_rate`` is the
      chance per matching POST (drawn from an RNG seeded with ``seed``), and ``fault_first_n``, when
      set, lets only that many more matching POSTs fail (it counts down to 0).
      ``tool_error`` only ever applies to ``tools/call``. ``retry_after_s`` sets Retry-After on
      ``http_429``; ``hang_s`` is how long ``hang`` waits before answering normally.
    - ``rate_limit_rps``/``rate_limit_burst``: the real server's global token bucket over every MCP
      message (0 = off; burst 0 = twice the rate).
    - ``echo_token``: tool failures quote the request's bearer token (``... (token 'T' rejected)``)
      and tool results carry it (``"debug_token": "T"``), as a server passing on an Infrahub error
      text, or a debugging build, could: what a client records must not keep it.
    """

    tokens: tuple[str, ...] = ()
    json_response: bool = False
    auth_mode: AuthMode = "gateway"
    read_only: bool = False
    error_style: ErrorStyle = "jsonrpc"
    latency_ms: float = 0.0
    tool_latency_ms: float = 0.0
    fault: Fault = "none"
    fault_rate: float = 1.0
    fault_first_n: int | None = None
    fault_methods: tuple[str, ...] = ()
    retry_after_s: float | None = None
    hang_s: float = 3600.0
    rate_limit_rps: float = 0.0
    rate_limit_burst: int = 0
    seed: int | None = None
    echo_token: bool = False

    def with_knobs(self, knobs: Mapping[str, Any]) -> DoubleConfig:
        """This config with ``knobs`` merged in, each checked; ValueError names the bad one."""
        changes: dict[str, Any] = {}
        for key, value in knobs.items():
            if key in _FIXED_FIELDS:
                raise ValueError(f"{key!r} is fixed when the double starts")
            check = _KNOB_CHECKS.get(key)
            if check is None:
                raise ValueError(f"unknown knob {key!r}; known: {', '.join(sorted(_KNOB_CHECKS))}")
            changes[key] = check(key, value)
        return replace(self, **changes)

    def public(self) -> dict[str, Any]:
        """The config as JSON for ``GET /_double/config``: everything but the tokens themselves."""
        data = {k: v for k, v in asdict(self).items() if k != "tokens"}
        data["fault_methods"] = list(self.fault_methods)
        data["tokens_configured"] = len(self.tokens)
        return data


def _number(low: float, high: float = math.inf) -> Callable[[str, Any], float]:
    def check(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} must be a number")
        if not low <= float(value) <= high:
            raise ValueError(f"{key} must be between {low} and {high}")
        return float(value)

    return check


def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    def optional(key: str, value: Any) -> Any:
        return None if value is None else check(key, value)

    return optional


def _integer(low: int) -> Callable[[str, Any], int]:
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{key} must be an integer >= {low}")
        return value

    return check


def _choice(options: Sequence[str]) -> Callable[[str, Any], str]:
    def check(key: str, value: Any) -> str:
        if value not in options:
            raise ValueError(f"{key} must be one of {', '.join(options)}")
        return str(value)

    return check


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false")
    return value


def _methods(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(m, str) for m in value):
        raise ValueError(f"{key} must be a list of JSON-RPC method names")
    return tuple(value)


_FIXED_FIELDS = frozenset({"tokens", "json_response"})
_KNOB_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "auth_mode": _choice(AUTH_MODES),
    "read_only": _boolean,
    "error_style": _choice(ERROR_STYLES),
    "latency_ms": _number(0),
    "tool_latency_ms": _number(0),
    "fault": _choice(FAULTS),
    "fault_rate": _number(0, 1),
    "fault_first_n": _optional(_integer(0)),
    "fault_methods": _methods,
    "retry_after_s": _optional(_number(0)),
    "hang_s": _number(0),
    "rate_limit_rps": _number(0),
    "rate_limit_burst": _integer(0),
    "seed": _optional(_integer(-(2**63))),
    "echo_token": _boolean,
}
assert set(_KNOB_CHECKS) | _FIXED_FIELDS == {f.name for f in fields(DoubleConfig)}


# --- what the double saw --------------------------------------------------------------------


@dataclass
class CallRecord:
    """One HTTP request to ``/mcp``, as ``GET /_double/calls`` lists it.

    ``method`` is the JSON-RPC method (``GET``/``DELETE`` for those HTTP requests); ``session`` the
    ``mcp-session-id`` (for ``initialize``, the one the reply assigned; always null for 2026-07-28
    requests, which have no session); ``auth`` is ``ok``/``missing``/``bad``; ``fault`` the injected
    fault, if any; ``outcome`` ``ok``/``error`` (``pending`` while the reply is being produced).
    ``http_status`` and ``error_code`` tell which error it was; ``target`` is the prompt name or
    resource URI of prompts/get and resources/read.
    """

    t: float
    method: str
    session: str | None
    tool: str | None = None
    arguments: Any = None
    target: str | None = None
    auth: str = "missing"
    fault: str | None = None
    outcome: str = "pending"
    http_status: int | None = None
    error_code: int | None = None


@dataclass
class _RequestVerdict:
    """What the HTTP layer decided about one POST, for the MCP layer to act on."""

    record: CallRecord
    token: str | None
    rate_limited: bool = False


class _TokenBucket:
    """The real server's global rate limiter: ``rate`` tokens per second, ``burst`` at most."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.capacity = float(burst if burst > 0 else max(1, int(rate * 2)))
        self.level = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.level >= 1:
            self.level -= 1
            return True
        return False


class DoubleState:
    """Everything that changes while the double runs: knobs, dataset, records, counters."""

    def __init__(self, config: DoubleConfig) -> None:
        self.initial = config
        self.config = config
        self.records: list[CallRecord] = []
        self.pristine: Inventory = build_inventory()
        self.inventory = self.pristine.copy()
        self.session_branch: str | None = None
        self.branches: dict[str, str] = {DEFAULT_BRANCH: "Default Branch"}
        self.rng = random.Random(config.seed)
        self.bucket: _TokenBucket | None = None
        self._apply_limits()

    def configure(self, knobs: Mapping[str, Any]) -> None:
        self.config = self.config.with_knobs(knobs)
        if "seed" in knobs:
            self.rng = random.Random(self.config.seed)
        if {"rate_limit_rps", "rate_limit_burst"} & set(knobs):
            self._apply_limits()

    def reset(self) -> None:
        """Start-up knobs, a fresh dataset, no records, a full rate bucket, a re-seeded RNG."""
        self.config = self.initial
        self.records.clear()
        self.inventory = self.pristine.copy()
        self.session_branch = None
        self.branches = {DEFAULT_BRANCH: "Default Branch"}
        self.rng = random.Random(self.config.seed)
        self._apply_limits()

    def _apply_limits(self) -> None:
        rate = self.config.rate_limit_rps
        self.bucket = _TokenBucket(rate, self.config.rate_limit_burst) if rate > 0 else None

    def classify_token(self, token: str | None) -> str:
        """``ok``/``missing``/``bad``; constant-time compare against every accepted token."""
        if token is None:
            return "missing"
        if not self.config.tokens:
            return "ok" if self.config.auth_mode == "none" else "bad"
        given = token.encode()
        matches = [hmac.compare_digest(given, t.encode()) for t in self.config.tokens]
        return "ok" if any(matches) else "bad"

    def pick_fault(self, method: str | None, is_request: bool) -> str | None:
        """The fault to inject into this POST, if any (counts ``fault_first_n`` down)."""
        cfg = self.config
        if cfg.fault == "none":
            return None
        if cfg.fault_methods and method not in cfg.fault_methods:
            return None
        if cfg.fault == "tool_error" and method != "tools/call":
            return None
        if cfg.fault == "jsonrpc_rate_limit" and not is_request:
            return None  # a notification has no reply to carry the error
        if cfg.fault_first_n is not None and cfg.fault_first_n <= 0:
            return None
        if cfg.fault_rate < 1.0 and self.rng.random() >= cfg.fault_rate:
            return None
        if cfg.fault_first_n is not None:
            self.config = replace(cfg, fault_first_n=cfg.fault_first_n - 1)
        return cfg.fault

    def ensure_session_branch(self) -> str:
        """The branch writes go to, created on the first write (``mcp/session-YYYYMMDD-<hex>``)."""
        if self.session_branch is None:
            stamp = datetime.now(UTC).strftime("%Y%m%d")
            self.session_branch = f"mcp/session-{stamp}-{uuid.uuid4().hex[:6]}"
            self.branches[self.session_branch] = "MCP session branch"
        return self.session_branch

    def stats(self) -> dict[str, Any]:
        def count(values: Iterable[str | None]) -> dict[str, int]:
            return dict(Counter(v for v in values if v is not None))

        return {
            "total_requests": len(self.records),
            "by_method": count(r.method for r in self.records),
            "by_tool": count(r.tool for r in self.records),
            "by_fault": count(r.fault for r in self.records),
            "by_auth": count(r.auth for r in self.records),
            "by_outcome": count(r.outcome for r in self.records),
        }


# --- the MCP layer --------------------------------------------------------------------------


class ToolFailure(Exception):
    """A tool failed the way the real server reports it.

    ``text`` is what the real server puts after ``Internal error: `` in the JSON-RPC error (and,
    with ``--error-style isError``, the text of the error result). ``code`` is the JSON-RPC code.
    """

    def __init__(self, text: str, code: int = INTERNAL_ERROR_CODE) -> None:
        super().__init__(text)
        self.text = text
        self.code = code

    @classmethod
    def from_inventory(cls, error: InventoryError) -> ToolFailure:
        return cls(error.text())

    def message(self) -> str:
        prefix = "Internal error: " if self.code == INTERNAL_ERROR_CODE else ""
        return prefix + self.text


def _echoing(failure: ToolFailure, token: str | None) -> ToolFailure:
    """``failure`` with the request's token in its first line (the ``echo_token`` knob), as an
    Infrahub error text quoting the credential it refused would have it."""
    if token is None:
        return failure
    first, newline, rest = failure.text.partition("\n")
    return ToolFailure(f"{first} (token '{token}' rejected){newline}{rest}", failure.code)


def _infrahub_401(url: str) -> str:
    """What httpx says when Infrahub rejects the token (the real server passes it on)."""
    return (
        f"Client error '401 Unauthorized' for url '{url}'\n"
        "For more information check: https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/401"
    )


def _verdict(ctx: ServerRequestContext[Any, Any]) -> _RequestVerdict | None:
    request = ctx.request
    scope = getattr(request, "scope", None)
    if not isinstance(scope, dict):
        return None
    verdict = scope.get(_SCOPE_KEY)
    return verdict if isinstance(verdict, _RequestVerdict) else None


def _json_text(value: Any) -> str:
    """Compact JSON, as the real server serializes tool results."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _arg_description(text: str, schema: Mapping[str, Any]) -> str:
    """The argument description FastMCP generates for a prompt argument (kept verbatim)."""
    return (
        f"{text}\n\nProvide a value matching the following JSON schema: {_json_text(schema)}. "
        "Encode non-string values as JSON."
    )


def _prompt_argument(name: str, text: str, required: bool) -> dict[str, Any]:
    if required:
        schema: dict[str, Any] = {"description": text, "type": "string"}
    else:
        schema = {
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "default": None,
            "description": text,
        }
    return {"name": name, "description": _arg_description(text, schema), "required": required}


_PROMPTS: tuple[dict[str, Any], ...] = (
    {
        "name": "infrahub_agent",
        "description": "System prompt for the Infrahub infrastructure agent.",
        "arguments": [],
    },
    {
        "name": "answer_infra_question",
        "description": "Read-only pipeline for answering infrastructure questions using "
        "Infrahub data.",
        "arguments": [
            _prompt_argument("question", "The infrastructure question to answer.", True),
            _prompt_argument(
                "kind_hint",
                "Known or guessed schema kind. Skips the discovery step if provided.",
                False,
            ),
            _prompt_argument(
                "fields", "Comma-separated attribute names to include in the result.", False
            ),
            _prompt_argument("branch", "Branch to query. Defaults to the default branch.", False),
        ],
    },
    {
        "name": "make_infra_change",
        "description": "Write workflow for making infrastructure changes through Infrahub.",
        "arguments": [
            _prompt_argument("description", "What infrastructure change to make.", True),
            _prompt_argument("kind", "Target schema kind for the change.", False),
            _prompt_argument(
                "branch",
                "Existing branch to target. A session branch is auto-created if omitted.",
                False,
            ),
        ],
    },
    {
        "name": "explore_schema",
        "description": "Schema discovery prompt for exploring Infrahub's data model.",
        "arguments": [
            _prompt_argument(
                "kind", "Specific kind to explore. Omit to browse the full catalog.", False
            )
        ],
    },
)

_FASTMCP_META: dict[str, Any] = {"fastmcp": {"tags": []}}
_RESOURCES: tuple[dict[str, Any], ...] = (
    {
        "uri": "infrahub://schema",
        "name": "Schema Catalog",
        "description": "All non-internal schema kinds available in this Infrahub instance, as a "
        "JSON object mapping kind names to their human-readable labels. Use this to discover what "
        "kinds exist before calling get_nodes or node_upsert.",
        "mimeType": "application/json",
    },
    {
        "uri": "infrahub://graphql-schema",
        "name": "GraphQL Schema",
        "description": "Full GraphQL schema SDL for this Infrahub instance. Use as a reference "
        "when constructing complex query_graphql calls.",
        "mimeType": "text/plain",
    },
    {
        "uri": "infrahub://branches",
        "name": "Branches",
        "description": "All branches currently present in this Infrahub instance, including the "
        "active session branch when one has been created. Read this to know which branches are "
        "available before querying or proposing changes.",
        "mimeType": "application/json",
    },
)
_SCHEMA_TEMPLATE = {
    "uriTemplate": "infrahub://schema/{kind}",
    "name": "Schema Kind Detail",
    "description": "Full schema definition for a specific node kind: attributes, relationships, "
    "and the complete set of filters accepted by get_nodes. Relationships include one level of "
    "inlined peer schemas when INFRAHUB_MCP_SCHEMA_EXPAND_PEERS is enabled (the default). Fetch "
    "this before filtering nodes of an unfamiliar kind. Arrays are encoded in TOON tabular format: "
    "header declares fields once, each row is one entry.",
    "mimeType": "text/plain",
}


def agent_prompt(read_only: bool) -> str:
    """The ``infrahub_agent`` prompt: how to answer inventory questions with these tools."""
    mode = "read-only" if read_only else "read and write"
    text = f"""\
You answer questions about an infrastructure inventory kept in Infrahub, a graph database of \
sites, devices, interfaces, IP prefixes and addresses. You have {mode} access through the tools \
of this server. Base every answer on data you fetched in this conversation; never invent kinds, \
attribute names, objects or values.

## Find out what exists first
Kind names are specific to this instance (for example a device may be `DcimDevice`, not \
`Device`). Start with the schema: read the `infrahub://schema` resource, or call `get_schema()` \
without arguments, to get every kind and its label. Before filtering a kind you have not used \
yet, call `get_schema(kind="...")` (or read `infrahub://schema/{{kind}}`) for its attributes, \
relationships and the exact filter keys it accepts.

## Fetch the data
- `get_nodes(kind, filters)` lists the objects of one kind. Attribute filters are \
`<attribute>__value` (`{{"name__value": "atl1"}}`); filters through a relationship are \
`<relationship>__<attribute>__value` (`{{"site__name__value": "atl1"}}`). Pass \
`include_attributes=True` only when you need more than names. Results are paged: check \
`total_count` and `has_more`, and use `offset`/`limit` to read further pages.
- `search_nodes(query, kind)` finds objects when you only know part of a name or value.
- `query_graphql(query)` reads across relationships in one request when the typed tools are not \
enough. It accepts queries only.
- `find_paths(source, destination)` and `find_reachable(source, target_kinds)` answer "how are \
these connected" and "what depends on this"; refer to objects by id or by kind-qualified \
human-friendly id such as `DcimDevice__atl1-edge1`.

## Data formats
Schema details, attribute rows and traversal results come in TOON: a header names the fields \
once and each indented line below it is one record, like a table.

## When a tool fails
Errors explain what went wrong and usually end with a remediation: follow it (fix the kind, the \
filter key or the arguments) and try again. If the server reports that authentication failed or \
that the service is unavailable, stop and say so; retrying will not help.

## Answering
Answer briefly and precisely. Name the kind you queried, the filters you used and how many \
objects matched; list the objects when there are few. If the data does not answer the question, \
say what is missing instead of guessing."""
    if read_only:
        return (
            text
            + """

## Read-only mode
This server runs in read-only mode: write operations (creating, updating or deleting nodes, \
GraphQL mutations, branch changes and proposed changes) are disabled. Only reads and schema \
discovery are available."""
        )
    return (
        text
        + """

## Changing data
Writes go to a session branch that is created on your first write; the default branch is never \
changed directly. Use `node_upsert` to create or update scalar attributes, `node_delete` to \
remove a node (only after the user confirmed), `mutate_graphql` for anything else, \
`reset_session_branch` to start over or switch branch, and `propose_changes` to open a proposed \
change for human review when you are done."""
    )


def question_prompt(
    question: str, kind_hint: str | None, fields_wanted: str | None, branch: str | None
) -> str:
    """The ``answer_infra_question`` prompt: a step-by-step read workflow for one question."""
    where = f" on branch `{branch}`" if branch else ""
    branch_arg = f', branch="{branch}"' if branch else ""
    kind = kind_hint or "<kind>"
    first = (
        f"1. The kind to query is `{kind_hint}`; skip the catalog."
        if kind_hint
        else "1. Read `infrahub://schema` (or call `get_schema()`) and pick the kind that matches."
    )
    wanted = (
        f"\nOnly these attributes matter to the user: {fields_wanted}." if fields_wanted else ""
    )
    attrs = ", include_attributes=True" if fields_wanted else ""
    return f"""\
Answer this infrastructure question{where}:

> {question}{wanted}

{first}
2. Read `infrahub://schema/{kind}` for its attributes, relationships and filter keys.
3. Call `get_nodes(kind="{kind}"{branch_arg}{attrs})` with filters built from those keys, or \
`search_nodes(query=..., kind="{kind}"{branch_arg})` when you only know part of a value.
4. Use `query_graphql` only if the answer needs data from related objects.
5. Answer, naming the kind, the filters and the branch you used."""


def explore_prompt(kind: str | None) -> str:
    """The ``explore_schema`` prompt."""
    if kind:
        return f"""\
Describe the schema of `{kind}`: read `infrahub://schema/{kind}` and list its attributes (name, \
type, optional), its relationships (name, peer kind, cardinality) and the filter keys `get_nodes` \
accepts. The detail is in TOON: a header names the fields, each indented line is one entry."""
    return """\
Describe this Infrahub instance's data model: read `infrahub://schema` for every kind and its \
label, group the kinds by namespace (the prefix of the kind name, such as `Dcim` or `Ipam`), and \
offer to read `infrahub://schema/<kind>` for any kind the user wants in detail."""


def change_prompt(description: str, kind: str | None, branch: str | None) -> str:
    """The ``make_infra_change`` prompt."""
    target = kind or "<kind>"
    where = f" on branch `{branch}`" if branch else ""
    return f"""\
Make this change{where}:

> {description}

1. Read `infrahub://schema/{target}` for required attributes and valid names.
2. Call `node_upsert(kind="{target}", data={{...}})` to create (no id) or update (with id or hfid) \
a node; use `node_delete` only after the user confirmed.
3. Read the nodes back with `get_nodes` to check the change.
4. Call `propose_changes(title=..., description=...)` to ask for review.
Writes land on a session branch; the default branch is never modified directly."""


class InfrahubMcpDouble:
    """The MCP handlers: tools, prompts and resources, answering like infrahub-mcp 1.2.0."""

    def __init__(self, state: DoubleState) -> None:
        self.state = state
        self.tool_definitions = load_tool_definitions()
        self.tools = {t["name"]: types.Tool.model_validate(t) for t in self.tool_definitions}
        self.write_tools = frozenset(t["name"] for t in self.tool_definitions if _is_write_tool(t))
        self.validators = {
            t["name"]: Draft202012Validator(t["inputSchema"]) for t in self.tool_definitions
        }
        self.implementations: dict[str, Callable[[dict[str, Any]], Any]] = {
            "query_graphql": self._query_graphql,
            "get_nodes": self._get_nodes,
            "search_nodes": self._search_nodes,
            "get_session_info": self._get_session_info,
            "get_schema": self._get_schema,
            "find_paths": self._find_paths,
            "find_reachable": self._find_reachable,
            "node_upsert": self._node_upsert,
            "node_delete": self._node_delete,
            "propose_changes": self._propose_changes,
            "mutate_graphql": self._mutate_graphql,
            "reset_session_branch": self._reset_session_branch,
        }
        assert set(self.implementations) == set(self.tools)

    def build_server(self) -> Server[Any]:
        server: Server[Any] = Server(
            SERVER_NAME,
            version=SERVER_VERSION,
            # Mcp-Param header checks look schemas up here instead of re-running tools/list.
            get_tool_input_schema=lambda name: (
                self.tools[name].input_schema if name in self.tools else None
            ),
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
            on_list_prompts=self.list_prompts,
            on_get_prompt=self.get_prompt,
            on_list_resources=self.list_resources,
            on_list_resource_templates=self.list_resource_templates,
            on_read_resource=self.read_resource,
        )
        server.middleware.append(_RateLimitGate())
        return server

    @property
    def config(self) -> DoubleConfig:
        return self.state.config

    # --- tools ------------------------------------------------------------------------------

    async def list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        hidden = self.write_tools if self.config.read_only else frozenset()
        return types.ListToolsResult(tools=[t for n, t in self.tools.items() if n not in hidden])

    async def call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        verdict = _verdict(ctx)
        if self.config.tool_latency_ms > 0:
            await anyio.sleep(self.config.tool_latency_ms / 1000)
        name, arguments = params.name, dict(params.arguments or {})
        echo = verdict.token if verdict is not None and self.config.echo_token else None
        try:
            self._check_call(name, arguments, verdict)
            if verdict is not None and verdict.record.fault == "tool_error":
                raise ToolFailure(f"Error calling tool '{name}': injected fault (tool_error)")
            output = self.implementations[name](arguments)
        except InventoryError as error:
            return self._failed(_echoing(ToolFailure.from_inventory(error), echo))
        except ToolFailure as failure:
            return self._failed(_echoing(failure, echo))
        except MCPError:
            raise
        except Exception as error:  # a bug in the double: fail like the real server, loudly
            logger.exception("tool %s failed", name)
            return self._failed(ToolFailure(f"Error calling tool '{name}': {error}"))
        if echo is not None:
            output = (
                {**output, "debug_token": echo}
                if isinstance(output, dict)
                else {"result": output, "debug_token": echo}
            )
        return _tool_result(output)

    def _check_call(
        self, name: str, arguments: dict[str, Any], verdict: _RequestVerdict | None
    ) -> None:
        """The real server's checks, in its order: token present, read-only, known tool,
        valid arguments, and (when the tool reaches Infrahub) a token Infrahub accepts."""
        passthrough = self.config.auth_mode == "passthrough"
        auth = verdict.record.auth if verdict is not None else "ok"
        if passthrough and auth == "missing":
            raise ToolFailure(NO_TOKEN_TEXT, NOT_FOUND_CODE)
        if self.config.read_only and (name in self.write_tools or name not in self.tools):
            raise MCPError(
                METHOD_NOT_FOUND_CODE,
                f"Tool '{name}' is not available in read-only mode. "
                "Write operations are disabled on this server.",
            )
        if name not in self.tools:
            raise MCPError(NOT_FOUND_CODE, f"Not found: Unknown tool: '{name}'")
        errors = sorted(self.validators[name].iter_errors(arguments), key=lambda e: list(e.path))
        if errors:
            raise MCPError(INVALID_PARAMS_CODE, _invalid_params_text(name, errors))
        if (
            passthrough
            and auth == "bad"
            and name not in ("get_session_info", "reset_session_branch")
        ):
            if name in ("query_graphql", "mutate_graphql"):
                # These post to /graphql/<branch> first: the SDK raises Infrahub's own error
                # text (seen with infrahub-mcp 1.2.0 in front of an Infrahub that said 401).
                raise ToolFailure(f"Error calling tool '{name}': {GRAPHQL_401_TEXT}")
            branch = arguments.get("branch") or DEFAULT_BRANCH
            url = f"{INFRAHUB_ADDRESS}/api/schema?branch={branch}"
            raise ToolFailure(f"Error calling tool '{name}': {_infrahub_401(url)}")

    def _failed(self, failure: ToolFailure) -> types.CallToolResult:
        if self.config.error_style == "isError":
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=failure.text)], is_error=True
            )
        raise MCPError(failure.code, failure.message())

    @property
    def inventory(self) -> Inventory:
        return self.state.inventory

    def _get_schema(self, args: dict[str, Any]) -> Any:
        kind = args.get("kind")
        if kind is None:
            return _json_text(self.inventory.catalog())
        self.inventory.schema(
            kind,
            "Call get_schema() for the full catalog, or get_schema(kind='<kind>') for details.",
        )
        expand = args.get("expand")
        return toon_encode(self.inventory.schema_detail(kind, expand_peers=expand is not False))

    def _get_nodes(self, args: dict[str, Any]) -> Any:
        kind: str = args["kind"]
        limit: int = args.get("limit", 50)
        offset: int = args.get("offset", 0)
        nodes = self.inventory.select(kind, args.get("filters"), args.get("partial_match", False))
        page = nodes[offset:] if limit == -1 else nodes[offset : offset + limit]
        rendered: Any = (
            toon_encode([self.inventory.node_dict(n) for n in page])
            if args.get("include_attributes", False)
            else [self.inventory.label(n) for n in page]
        )
        return {
            "nodes": rendered,
            "count": len(page),
            "total_count": len(nodes),
            "has_more": len(nodes) > offset + len(page),
            "offset": offset,
            "limit": limit,
        }

    def _search_nodes(self, args: dict[str, Any]) -> Any:
        query = str(args["query"]).strip()
        if not query:
            raise ToolFailure("Search query must not be blank after stripping whitespace.")
        return self.inventory.search(args["kind"], query, args.get("limit", 10))

    def _get_session_info(self, args: dict[str, Any]) -> Any:
        return {
            "session_branch": self.state.session_branch,
            "has_session_branch": self.state.session_branch is not None,
            "infrahub_address": INFRAHUB_ADDRESS,
            "branch": self.state.session_branch or DEFAULT_BRANCH,
            "default_branch": DEFAULT_BRANCH,
            "read_only": self.config.read_only,
            "server_version": SERVER_VERSION,
        }

    def _query_graphql(self, args: dict[str, Any]) -> Any:
        try:
            operation, data = run_graphql(self.inventory, args["query"])
        except GraphQLSyntaxError as error:
            raise ToolFailure(error.message) from None
        if operation == "mutation":
            raise ToolFailure(
                "Mutations are not allowed in query_graphql. Use mutate_graphql instead."
            )
        return data

    def _find_paths(self, args: dict[str, Any]) -> Any:
        return toon_encode(
            find_paths(
                self.inventory,
                args["source"],
                args["destination"],
                args.get("max_depth"),
                args.get("kind_filter"),
                args.get("relationship_filter"),
            )
        )

    def _find_reachable(self, args: dict[str, Any]) -> Any:
        return toon_encode(
            find_reachable(
                self.inventory,
                args["source"],
                args["target_kinds"],
                args.get("max_depth"),
                args.get("max_results", 20),
                args.get("shortest_paths_only", True),
            )
        )

    def _node_upsert(self, args: dict[str, Any]) -> Any:
        kind = args["kind"]
        node, skipped = self.inventory.upsert(kind, args["data"], args.get("id"), args.get("hfid"))
        result: dict[str, Any] = {
            "id": node.id,
            "display_label": self.inventory.label(node),
            "branch": self.state.ensure_session_branch(),
        }
        if skipped:
            result["skipped_attributes"] = skipped
            result["warning"] = (
                f"Attributes {skipped} are not defined on {kind}. "
                f"Check infrahub://schema/{kind} for valid attribute names."
            )
        return result

    def _node_delete(self, args: dict[str, Any]) -> Any:
        node = self.inventory.delete(args["kind"], args.get("id"), args.get("hfid"))
        return {
            "deleted_id": args.get("id") or args.get("hfid") or node.id,
            "branch": self.state.ensure_session_branch(),
        }

    def _propose_changes(self, args: dict[str, Any]) -> Any:
        if self.state.session_branch is None:
            raise ToolFailure(
                "No session branch exists yet.\n\nRemediation: Make at least one write "
                "(node_upsert / node_delete) before proposing changes."
            )
        return {
            "id": str(uuid.uuid4()),
            "title": args["title"],
            "source_branch": self.state.session_branch,
            "destination_branch": args.get("destination_branch") or DEFAULT_BRANCH,
        }

    def _mutate_graphql(self, args: dict[str, Any]) -> Any:
        try:
            operation, data = run_graphql(self.inventory, args["query"])
        except GraphQLSyntaxError as error:
            raise ToolFailure(error.message) from None
        if operation != "mutation":
            raise ToolFailure(
                "mutate_graphql only runs mutations.\n\nRemediation: Use query_graphql for reads."
            )
        self.state.ensure_session_branch()
        return data

    def _reset_session_branch(self, args: dict[str, Any]) -> Any:
        previous = self.state.session_branch
        branch = args.get("branch")
        if branch is None:
            self.state.session_branch = None
            return {
                "session_branch": None,
                "previous_branch": previous,
                "created": False,
                "action": "reset",
            }
        if branch == DEFAULT_BRANCH:
            raise ToolFailure(
                f"Branch {branch!r} resolves to the instance default branch; writes to it are not "
                "allowed.\n\nRemediation: Use the session branch or a feature branch; merge via "
                "propose_changes."
            )
        created = branch not in self.state.branches
        self.state.branches.setdefault(branch, "")
        self.state.session_branch = branch
        return {
            "session_branch": branch,
            "previous_branch": previous,
            "created": created,
            "action": "created" if created else "switched",
        }

    # --- prompts ----------------------------------------------------------------------------

    async def list_prompts(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        return types.ListPromptsResult(
            prompts=[types.Prompt.model_validate({**p, "_meta": _FASTMCP_META}) for p in _PROMPTS]
        )

    async def get_prompt(
        self, ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        spec = next((p for p in _PROMPTS if p["name"] == params.name), None)
        if spec is None:
            raise MCPError(NOT_FOUND_CODE, f"Not found: Unknown prompt: '{params.name}'")
        args = dict(params.arguments or {})
        missing = {a["name"] for a in spec["arguments"] if a["required"] and a["name"] not in args}
        if missing:
            raise MCPError(
                INVALID_PARAMS_CODE, f"Invalid params: Missing required arguments: {missing}"
            )
        if params.name == "infrahub_agent":
            text = agent_prompt(self.config.read_only)
        elif params.name == "answer_infra_question":
            text = question_prompt(
                args["question"], args.get("kind_hint"), args.get("fields"), args.get("branch")
            )
        elif params.name == "make_infra_change":
            text = change_prompt(args["description"], args.get("kind"), args.get("branch"))
        else:
            text = explore_prompt(args.get("kind"))
        return types.GetPromptResult(
            description=spec["description"],
            messages=[
                types.PromptMessage(role="user", content=types.TextContent(type="text", text=text))
            ],
        )

    # --- resources --------------------------------------------------------------------------

    async def list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return types.ListResourcesResult(
            resources=[
                types.Resource.model_validate({**r, "_meta": _FASTMCP_META}) for r in _RESOURCES
            ]
        )

    async def list_resource_templates(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        template = types.ResourceTemplate.model_validate(
            {**_SCHEMA_TEMPLATE, "_meta": _FASTMCP_META}
        )
        return types.ListResourceTemplatesResult(resource_templates=[template])

    async def read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        verdict = _verdict(ctx)
        kind = (
            uri.removeprefix("infrahub://schema/") if uri.startswith("infrahub://schema/") else None
        )
        known = uri in {r["uri"] for r in _RESOURCES} or bool(kind)
        if not known:
            raise MCPError(
                RESOURCE_NOT_FOUND_CODE, f"Resource not found: Unknown resource: '{uri}'"
            )
        if self.config.auth_mode == "passthrough" and verdict is not None:
            if verdict.record.auth == "missing":
                raise MCPError(NOT_FOUND_CODE, NO_TOKEN_TEXT)
            if verdict.record.auth == "bad":
                url = (
                    f"{INFRAHUB_ADDRESS}/graphql/{DEFAULT_BRANCH}"
                    if uri == "infrahub://branches"
                    else f"{INFRAHUB_ADDRESS}/api/schema?branch={DEFAULT_BRANCH}"
                )
                raise MCPError(
                    INTERNAL_ERROR_CODE,
                    f"Internal error: Error reading resource '{uri}': {_infrahub_401(url)}",
                )
        if kind:
            if kind not in self.inventory.schemas:
                raise MCPError(
                    INTERNAL_ERROR_CODE,
                    f"Internal error: Schema not found for kind '{kind}'. "
                    "Read infrahub://schema to list valid kind names.",
                )
            text, mime = toon_encode(self.inventory.schema_detail(kind)), "text/plain"
        elif uri == "infrahub://schema":
            text, mime = _json_text(self.inventory.catalog()), "application/json"
        elif uri == "infrahub://graphql-schema":
            text, mime = graphql_sdl(self.inventory), "text/plain"
        else:
            branches = {
                name: {"is_default": name == DEFAULT_BRANCH, "description": description}
                for name, description in self.state.branches.items()
            }
            text, mime = _json_text(branches), "application/json"
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=uri, mime_type=mime, text=text)]
        )


def _tool_result(output: Any) -> types.CallToolResult:
    """Wrap a tool's return value the way FastMCP does for the real server.

    Text stays text; a dict becomes compact JSON text plus ``structuredContent``; a list becomes
    one JSON text block (and no content at all when empty).
    """
    if isinstance(output, str):
        return types.CallToolResult(content=[types.TextContent(type="text", text=output)])
    if isinstance(output, dict):
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=_json_text(output))],
            structured_content=output,
        )
    items = list(output)
    content = [types.TextContent(type="text", text=_json_text(items))] if items else []
    return types.CallToolResult(content=content)


def _invalid_params_text(tool: str, errors: Sequence[Any]) -> str:
    """A -32602 message in the shape pydantic gives the real server (one entry per problem)."""
    count = len(errors)
    lines = [f"Invalid params: {count} validation error{'s' if count > 1 else ''} for call[{tool}]"]
    for error in errors:
        location = ".".join(str(p) for p in error.path)
        message = str(error.message)
        if error.validator == "required":
            location = message.split("'")[1] if "'" in message else location
            message = "Field required"
        elif error.validator == "additionalProperties":
            message = f"Unexpected keyword argument: {message}"
        lines.append(location or tool)
        lines.append(f"  {message}")
    return "\n".join(lines)


class _RateLimitGate:
    """Server middleware: refuses a request the HTTP layer found over the rate limit.

    It runs for every request, ``initialize`` and ``server/discover`` included, like the real
    server's rate-limiting middleware.
    """

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        verdict = _verdict(ctx)
        if ctx.request_id is not None and verdict is not None and verdict.rate_limited:
            raise MCPError(RATE_LIMIT_CODE, RATE_LIMIT_TEXT)
        return await call_next(ctx)


# --- the HTTP layer -------------------------------------------------------------------------


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _bearer_token(scope: Scope) -> str | None:
    """The token from ``Authorization: Bearer <t>`` (or a bare token, as the real server takes)."""
    value = (_header(scope, b"authorization") or "").strip()
    scheme, _, rest = value.partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else value
    return token or None


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

    async def _calls(self, request: Request) -> Response:
        return JSONResponse([asdict(r) for r in self.state.records])

    async def _stats(self, request: Request) -> Response:
        return JSONResponse(self.state.stats())

    # --- the /mcp gate ----------------------------------------------------------------------

    async def _mcp(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        method = scope["method"]
        token = _bearer_token(scope)
        record = CallRecord(
            t=time.time(),
            method=method,
            session=_header(scope, b"mcp-session-id"),
            auth=state.classify_token(token),
        )
        state.records.append(record)
        verdict = _RequestVerdict(record=record, token=token)
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
        body = _json_text({"error": text}).encode()
        headers.append((b"content-length", str(len(body)).encode()))
        record.outcome, record.http_status = "error", status
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        verdict: _RequestVerdict,
        observe_body: bool,
    ) -> None:
        """Hand the request to the SDK's session manager; watch the reply to record the outcome."""
        record = verdict.record
        scope[_SCOPE_KEY] = verdict
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


# --- command line ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m doubles.mcp_server",
        description="An Infrahub MCP server double (infrahub-mcp 1.2.0) for tests and demos.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        help="an accepted Infrahub API token (repeatable; also DOUBLE_MCP_TOKENS=a,b)",
    )
    parser.add_argument("--auth-mode", choices=AUTH_MODES, default="gateway")
    parser.add_argument("--read-only", action="store_true", help="hide and refuse the write tools")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--tool-latency-ms", type=float, default=0.0)
    parser.add_argument("--json-response", action="store_true", help="JSON replies instead of SSE")
    parser.add_argument("--error-style", choices=ERROR_STYLES, default="jsonrpc")
    parser.add_argument("--rate-limit-rps", type=float, default=0.0)
    parser.add_argument("--rate-limit-burst", type=int, default=0)
    parser.add_argument("--seed", type=int, default=None)
    return parser


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> DoubleConfig:
    from_env = [t.strip() for t in environ.get("DOUBLE_MCP_TOKENS", "").split(",") if t.strip()]
    tokens = tuple(dict.fromkeys([*args.token, *from_env]))
    base = DoubleConfig(tokens=tokens, json_response=args.json_response)
    return base.with_knobs(
        {
            "auth_mode": args.auth_mode,
            "read_only": args.read_only,
            "latency_ms": args.latency_ms,
            "tool_latency_ms": args.tool_latency_ms,
            "error_style": args.error_style,
            "rate_limit_rps": args.rate_limit_rps,
            "rate_limit_burst": args.rate_limit_burst,
            "seed": args.seed,
        }
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the double under uvicorn until SIGINT/SIGTERM."""
    args = _parser().parse_args(argv)
    try:
        config = config_from_args(args, os.environ)
    except ValueError as error:
        print(f"mcp double: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if config.auth_mode == "gateway" and not config.tokens:
        logger.warning("gateway auth with no --token: every /mcp request will get HTTP 401")
    serve(build_app(config), args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
