"""What changes while the MCP double runs, and what it saw: the state every layer shares.

One :class:`DoubleState` per app holds the current knobs, the dataset (writes and ``POST
/_double/inventory`` change it; a reset restores it), the session branch, the fault RNG, the
rate-limit bucket and the record of every request, which ``GET /_double/calls`` lists so a test
can compare what a client did with what the server saw. The HTTP layer decides about a request
before the MCP SDK parses it, and leaves its :class:`RequestVerdict` in the ASGI scope for the
MCP handlers to read.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from mcp.server.context import ServerRequestContext

from doubles.inventory import Inventory, InventoryError, build_inventory
from doubles.mcp_server.config import DEFAULT_BRANCH, DoubleConfig

__all__ = [
    "SCOPE_KEY",
    "CallRecord",
    "DoubleState",
    "RequestVerdict",
    "TokenBucket",
    "request_verdict",
]

SCOPE_KEY = "agentq.double"  # where the HTTP layer leaves its verdict for the MCP layer


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
class RequestVerdict:
    """What the HTTP layer decided about one POST, for the MCP layer to act on."""

    record: CallRecord
    token: str | None
    rate_limited: bool = False


def request_verdict(ctx: ServerRequestContext[Any, Any]) -> RequestVerdict | None:
    """The verdict the HTTP layer left for the request ``ctx`` handles, if it came through it."""
    request = ctx.request
    scope = getattr(request, "scope", None)
    if not isinstance(scope, dict):
        return None
    verdict = scope.get(SCOPE_KEY)
    return verdict if isinstance(verdict, RequestVerdict) else None


class TokenBucket:
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
        self.bucket: TokenBucket | None = None
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

    def change_inventory(self, changes: Any) -> dict[str, list[Any]]:
        """Apply the changes of ``POST /_double/inventory`` all or nothing: to a copy, swapped in
        only when every one succeeded, so a test's typo leaves the dataset as it was. Returns
        what changed; a bad change raises ValueError, one line naming it by its position."""
        if not isinstance(changes, list):
            raise ValueError('the body must be {"changes": [...]}')
        changed = self.inventory.copy()
        summary: dict[str, list[Any]] = {"added": [], "removed": [], "renamed": []}
        for index, change in enumerate(changes):
            try:
                _apply_change(changed, change, summary)
            except InventoryError as error:
                raise ValueError(f"changes[{index}]{_describe(change)}: {error.message}") from None
        self.inventory = changed
        return summary

    def _apply_limits(self) -> None:
        rate = self.config.rate_limit_rps
        self.bucket = TokenBucket(rate, self.config.rate_limit_burst) if rate > 0 else None

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


# The fields of each inventory change (``POST /_double/inventory``), all required.
_CHANGE_FIELDS = {
    "add": ("op", "kind", "name", "like"),
    "remove": ("op", "kind", "name"),
    "rename": ("op", "kind", "name", "to"),
}


def _apply_change(inventory: Inventory, change: Any, summary: dict[str, list[Any]]) -> None:
    if not isinstance(change, dict):
        raise InventoryError("a change must be an object")
    op = change.get("op")
    if op not in _CHANGE_FIELDS:
        raise InventoryError(f"unknown op {op!r} (add, remove or rename)")
    fields = _CHANGE_FIELDS[op]
    unknown = sorted(set(change) - set(fields))
    if unknown:
        raise InventoryError(f"unknown field(s) {unknown} for {op} ({', '.join(fields)})")
    for name in fields:
        if not isinstance(change.get(name), str) or not change[name]:
            raise InventoryError(f"{op} needs {name!r}, a non-empty string")
    kind, name = change["kind"], change["name"]
    if op == "add":
        inventory.add_like(kind, change["like"], name)
        summary["added"].append(name)
    elif op == "remove":
        inventory.remove(kind, name)
        summary["removed"].append(name)
    else:
        inventory.rename(kind, name, change["to"])
        summary["renamed"].append([name, change["to"]])


def _describe(change: Any) -> str:
    """`` (rename DcimDevice 'old')``: which change failed, as far as it can be told."""
    if not isinstance(change, dict):
        return ""
    words = [str(change[key]) for key in ("op", "kind") if isinstance(change.get(key), str)]
    if isinstance(change.get("name"), str):
        words.append(repr(change["name"]))
    return f" ({' '.join(words)})" if words else ""
