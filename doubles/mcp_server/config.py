"""How the MCP double is set up: what it presents itself as, and the knobs that shape its behaviour.

Everything a test can change while the double runs is a field of :class:`DoubleConfig`, checked
by :meth:`DoubleConfig.with_knobs` whether it comes from the command line, ``POST
/_double/config`` or ``POST /_double/reset``, so a bad value is refused the same way everywhere
and names the knob it concerns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal, get_args

__all__ = [
    "AUTH_MODES",
    "DEFAULT_BRANCH",
    "ERROR_STYLES",
    "FAULTS",
    "INFRAHUB_ADDRESS",
    "MCP_PATH",
    "SERVER_NAME",
    "SERVER_VERSION",
    "AuthMode",
    "DoubleConfig",
    "ErrorStyle",
    "Fault",
]

# What the double presents itself as (fixed, not knobs).
SERVER_NAME = "Infrahub MCP Server"
SERVER_VERSION = "1.2.0-double"
# Where the tools pretend Infrahub lives: it appears in error texts, as the real URLs do.
INFRAHUB_ADDRESS = "http://infrahub.double"
DEFAULT_BRANCH = "main"
MCP_PATH = "/mcp"

# The choices of the knobs that have a few.
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
