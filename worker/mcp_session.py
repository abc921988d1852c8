"""One MCP session per job, carrying that job's user token to the Infrahub MCP server.

Each user's token is passed through (``Authorization: Bearer``) so Infrahub applies that user's
permissions; sessions are therefore never shared between jobs. What is shared carries no
identity: the SSL context, and the loop's pool of keep-alive connections to the server (every
request carries its own job's token), so a job opens no TCP connection of its own. Timeouts
are set explicitly because the SDK's 5 s default fails slow queries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
from agents.mcp import MCPServerStreamableHttp

from agentq.errors import ErrorCode
from agentq.ratelimit import RateLimiter
from agentq.settings import Settings
from worker.clients import shared_ssl_context
from worker.failures import JobContext, failure_for_http_status, parse_retry_after
from worker.mcp_transport import RetryingTransport
from worker.tool_bridge import SERVER_NAME


def open_mcp_server(
    settings: Settings,
    token: str,
    job: JobContext,
    *,
    limiter: RateLimiter | None = None,
    resendable: Callable[[str], bool] | None = None,
    pool: httpx2.AsyncBaseTransport | None = None,
) -> MCPServerStreamableHttp:
    """An (unconnected) MCP client for one job; use it as ``async with``.

    The agent is not given this server (``mcp_servers``): its tools come from
    ``worker.tool_bridge`` and call this server's session. ``limiter`` paces every request
    under the MCP rate limit shared by all workers; ``pool`` is the loop's connection pool to the
    server (``worker.clients``), kept open across jobs;
    ``resendable`` says which tool calls may be sent twice (``worker.mcp_transport``).
    """

    async def record_http_failure(response: httpx2.Response) -> None:
        """Keep the HTTP status the SDK would lose; a rejected token ends the run for sure."""
        failure = failure_for_http_status(
            response.status_code,
            parse_retry_after(response.headers.get("retry-after")),
            "MCP server",
        )
        if failure is None:
            return
        if failure.code == ErrorCode.AUTH_ERROR:
            job.record(failure)
        else:
            job.last_http_failure = failure
        await response.aread()
        response.raise_for_status()

    def note_failure(method: str | None, error: str, retried: bool) -> None:
        job.http_error("mcp", method, error, retried)

    def client_factory(
        headers: dict[str, str] | None = None, timeout: Any = None, auth: Any = None
    ) -> httpx2.AsyncClient:
        transport = RetryingTransport(
            pool or httpx2.AsyncHTTPTransport(verify=shared_ssl_context()),
            settings.mcp_request_retries,
            note_failure,
            limiter,
            resendable,
            shared=pool is not None,
        )
        return httpx2.AsyncClient(
            headers=headers,
            timeout=timeout,
            auth=auth,
            transport=transport,
            follow_redirects=False,
            event_hooks={"response": [record_http_failure]},
        )

    return MCPServerStreamableHttp(
        params={
            "url": settings.mcp_url,
            "headers": {"Authorization": f"Bearer {token}"},
            "timeout": settings.mcp_connect_timeout_seconds,
            "sse_read_timeout": settings.mcp_sse_read_timeout_seconds,
            "httpx_client_factory": client_factory,
        },
        name=SERVER_NAME,
        client_session_timeout_seconds=settings.tool_timeout_seconds,
    )
