"""Tokens: where the MCP double reads them, how it judges them, and how a refusal reads.

The worker passes an Infrahub API token as ``Authorization: Bearer <token>``. Depending on the
``auth_mode`` knob the double refuses a bad one as a gateway in front of the server would (HTTP
401, in the app), or as the real server with ``INFRAHUB_MCP_AUTH_MODE=token-passthrough`` does:
only tool calls and resource reads need a token, a missing one fails with the server's own text
and a wrong one with the error Infrahub's 401 turns into. Tokens are compared in constant time
and never kept.
"""

from __future__ import annotations

import hmac
from typing import Any

from mcp.shared.exceptions import MCPError
from starlette.types import Scope

from doubles.mcp_server.config import DEFAULT_BRANCH, INFRAHUB_ADDRESS, DoubleConfig
from doubles.mcp_server.errors import INTERNAL_ERROR_CODE, NOT_FOUND_CODE, ToolFailure

__all__ = [
    "GRAPHQL_401_TEXT",
    "NO_TOKEN_TEXT",
    "bearer_token",
    "classify_token",
    "header",
    "infrahub_401",
    "resource_refusal",
    "tool_refusal",
]

NO_TOKEN_TEXT = "Authentication required: no Infrahub API token in request header."  # noqa: S105
GRAPHQL_401_TEXT = "Invalid token"  # Infrahub's answer to an unknown API key on /graphql


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def bearer_token(scope: Scope) -> str | None:
    """The token from ``Authorization: Bearer <t>`` (or a bare token, as the real server takes)."""
    value = (header(scope, b"authorization") or "").strip()
    scheme, _, rest = value.partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else value
    return token or None


def classify_token(config: DoubleConfig, token: str | None) -> str:
    """``ok``/``missing``/``bad``; constant-time compare against every accepted token."""
    if token is None:
        return "missing"
    if not config.tokens:
        return "ok" if config.auth_mode == "none" else "bad"
    given = token.encode()
    matches = [hmac.compare_digest(given, t.encode()) for t in config.tokens]
    return "ok" if any(matches) else "bad"


def infrahub_401(url: str) -> str:
    """What httpx says when Infrahub rejects the token (the real server passes it on)."""
    return (
        f"Client error '401 Unauthorized' for url '{url}'\n"
        "For more information check: https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/401"
    )


def tool_refusal(name: str, arguments: dict[str, Any]) -> ToolFailure:
    """How tool ``name`` fails in passthrough mode when Infrahub rejects the request's token."""
    if name in ("query_graphql", "mutate_graphql"):
        # These post to /graphql/<branch> first: the SDK raises Infrahub's own error
        # text (seen with infrahub-mcp 1.2.0 in front of an Infrahub that said 401).
        return ToolFailure(f"Error calling tool '{name}': {GRAPHQL_401_TEXT}")
    branch = arguments.get("branch") or DEFAULT_BRANCH
    url = f"{INFRAHUB_ADDRESS}/api/schema?branch={branch}"
    return ToolFailure(f"Error calling tool '{name}': {infrahub_401(url)}")


def resource_refusal(uri: str, auth: str) -> MCPError | None:
    """How reading ``uri`` fails in passthrough mode with a ``missing`` or ``bad`` token."""
    if auth == "missing":
        return MCPError(NOT_FOUND_CODE, NO_TOKEN_TEXT)
    if auth == "bad":
        url = (
            f"{INFRAHUB_ADDRESS}/graphql/{DEFAULT_BRANCH}"
            if uri == "infrahub://branches"
            else f"{INFRAHUB_ADDRESS}/api/schema?branch={DEFAULT_BRANCH}"
        )
        return MCPError(
            INTERNAL_ERROR_CODE,
            f"Internal error: Error reading resource '{uri}': {infrahub_401(url)}",
        )
    return None
