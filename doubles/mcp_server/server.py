"""The MCP layer of the double: the SDK's low-level ``Server`` and which handler answers what.

The double is built on the same MCP SDK (v2.3) as the real server's stack sees it, so the
protocol itself (both eras, sessions, framing, the SDK's own errors) is the SDK's, not a copy.
This module only wires the double's handlers into it (tools, prompts, resources) and adds the
real server's global rate limit as server middleware, so it applies to every request,
``initialize`` and ``server/discover`` included.
"""

from __future__ import annotations

from typing import Any

import mcp_types as types
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError

from doubles.mcp_server import prompts, resources
from doubles.mcp_server.config import SERVER_NAME, SERVER_VERSION
from doubles.mcp_server.errors import RATE_LIMIT_CODE, RATE_LIMIT_TEXT
from doubles.mcp_server.state import DoubleState, request_verdict
from doubles.mcp_server.tools import InfrahubTools

__all__ = ["InfrahubMcpDouble"]


class InfrahubMcpDouble:
    """The MCP handlers: tools, prompts and resources, answering like infrahub-mcp 1.2.0."""

    def __init__(self, state: DoubleState) -> None:
        self.state = state
        self.tools = InfrahubTools(state)

    def build_server(self) -> Server[Any]:
        server: Server[Any] = Server(
            SERVER_NAME,
            version=SERVER_VERSION,
            # Mcp-Param header checks look schemas up here instead of re-running tools/list.
            get_tool_input_schema=self.tools.input_schema,
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

    async def list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return self.tools.list_tools()

    async def call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        return await self.tools.call_tool(params, request_verdict(ctx))

    async def list_prompts(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        return prompts.list_prompts()

    async def get_prompt(
        self, ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        return prompts.get_prompt(params, self.state.config.read_only)

    async def list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return resources.list_resources()

    async def list_resource_templates(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return resources.list_resource_templates()

    async def read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        return resources.read_resource(self.state, str(params.uri), request_verdict(ctx))


class _RateLimitGate:
    """Server middleware: refuses a request the HTTP layer found over the rate limit.

    It runs for every request, ``initialize`` and ``server/discover`` included, like the real
    server's rate-limiting middleware.
    """

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        verdict = request_verdict(ctx)
        if ctx.request_id is not None and verdict is not None and verdict.rate_limited:
            raise MCPError(RATE_LIMIT_CODE, RATE_LIMIT_TEXT)
        return await call_next(ctx)
