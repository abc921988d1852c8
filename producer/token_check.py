"""Proving a token at submit (``AGENTQ_VERIFY_TOKEN_AT_SUBMIT``), so a bad one is refused at once.

The worker proves every token anyway before spending anything on it (``worker.token_check``);
this earlier check gives the user the answer at submit (exit 2 / HTTP 401) instead of a job that
ends ``auth_error``, and keeps made-up tokens out of the queue altogether. It is the same read
(``agentq.token_proof``), over a short-lived MCP session of its own, with a success remembered per
process like the worker's.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx2
from mcp.client.client import Client as MCPClient
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from agentq.errors import AgentqError, ErrorCode, linked
from agentq.logs import scrub
from agentq.settings import Settings
from agentq.token_proof import AUTH_REJECTION_TEXT, PROOF_ARGUMENTS, PROOF_TOOL, ProofCache

REFUSED = "Infrahub rejected the token (checked at submit through the MCP server)"


def prove_at_submit(settings: Settings, token: str, proofs: ProofCache) -> None:
    """Return if Infrahub accepts ``token``; AgentqError ``auth_error`` if it refuses it,
    ``mcp_unavailable`` if the check cannot be made now."""
    if proofs.proven(token):
        return
    verdict = _run(_prove(settings, token))
    if verdict is not None:
        raise verdict
    proofs.remember(token)


def _run(coroutine: Any) -> AgentqError | None:
    """Run the check to completion, also from a thread whose event loop is running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)  # type: ignore[no-any-return]
    outcome: list[AgentqError | None] = []
    thread = threading.Thread(target=lambda: outcome.append(asyncio.run(coroutine)))
    thread.start()
    thread.join()
    return outcome[0] if outcome else _unavailable("the token check did not finish")


async def _prove(settings: Settings, token: str) -> AgentqError | None:
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx2.Timeout(settings.mcp_connect_timeout_seconds),
        follow_redirects=False,
    )
    try:
        async with (
            http,
            MCPClient(streamable_http_client(settings.mcp_url, http_client=http)) as mcp,
        ):
            result = await asyncio.wait_for(
                mcp.call_tool(PROOF_TOOL, dict(PROOF_ARGUMENTS)),
                settings.tool_timeout_seconds,
            )
    except BaseException as exc:  # every failure is one of the verdicts below
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return _verdict(exc)
    if result.is_error:
        text = " ".join(getattr(item, "text", "") for item in result.content)
        return _text_verdict(text)
    return None


def _verdict(exc: BaseException) -> AgentqError:
    for inner in linked(exc):
        if isinstance(inner, httpx2.HTTPStatusError) and inner.response.status_code in (401, 403):
            return AgentqError(REFUSED, code=ErrorCode.AUTH_ERROR)
        if isinstance(inner, MCPError):
            return _text_verdict(str(inner))
    text = " | ".join(str(inner) for inner in linked(exc))
    if AUTH_REJECTION_TEXT.search(text):
        return AgentqError(REFUSED, code=ErrorCode.AUTH_ERROR)
    return _unavailable(
        f"cannot check the token now: the MCP server did not answer ({type(exc).__name__})"
    )


def _text_verdict(text: str) -> AgentqError:
    if AUTH_REJECTION_TEXT.search(text):
        return AgentqError(REFUSED, code=ErrorCode.AUTH_ERROR)
    return _unavailable(
        "cannot check the token now: " + scrub(text.strip().split("\n", 1)[0][:200])
    )


def _unavailable(message: str) -> AgentqError:
    """The check could not be made: HTTP 503, CLI exit 3 (not the user's fault; try again)."""
    return AgentqError(message.rstrip(". ") + "; try again later", code=ErrorCode.MCP_UNAVAILABLE)
