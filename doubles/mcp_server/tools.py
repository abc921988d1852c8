"""The tools of infrahub-mcp 1.2.0: their definitions, the real server's checks, their answers.

``tools/list`` answers the real server's definitions verbatim, annotations, ``_meta`` and input
schemas included (``doubles/data/infrahub-mcp-1.2.0-tools.json``). A call is checked as the real
server checks it, in its order (token present, read-only mode, known tool, valid arguments, a
token Infrahub accepts), then answered from the double's inventory in the real tool's shape. A
failure leaves as the real server's JSON-RPC error, or as an ``isError`` result with
``error_style`` ``isError``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

import anyio
import mcp_types as types
from jsonschema import Draft202012Validator
from mcp.shared.exceptions import MCPError

from doubles.inventory import GraphQLSyntaxError, Inventory, InventoryError
from doubles.inventory.graphql import execute as run_graphql
from doubles.inventory.traversal import find_paths, find_reachable
from doubles.mcp_server.auth import NO_TOKEN_TEXT, tool_refusal
from doubles.mcp_server.config import (
    DEFAULT_BRANCH,
    INFRAHUB_ADDRESS,
    DoubleConfig,
)
from doubles.mcp_server.errors import (
    INVALID_PARAMS_CODE,
    METHOD_NOT_FOUND_CODE,
    NOT_FOUND_CODE,
    ToolFailure,
    argument_problems,
    echoing,
    invalid_params_text,
)
from doubles.mcp_server.state import DoubleState, RequestVerdict
from doubles.mcp_server.wire import json_text, tool_result
from doubles.toon import toon_encode

__all__ = ["InfrahubTools", "load_tool_definitions"]

logger = logging.getLogger("doubles.mcp_server")


# What the real server's query_graphql adds to any error Infrahub answers a query with.
GRAPHQL_REMEDIATION = (
    "Call get_schema() to list valid kinds, or get_schema(kind='...') to see attributes and "
    "filters."
)


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


class InfrahubTools:
    """The tool handlers, answering like infrahub-mcp 1.2.0 from the double's state."""

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

    @property
    def config(self) -> DoubleConfig:
        return self.state.config

    @property
    def inventory(self) -> Inventory:
        return self.state.inventory

    def input_schema(self, name: str) -> dict[str, Any] | None:
        """A tool's input schema (the SDK checks ``Mcp-Param`` headers against it)."""
        return self.tools[name].input_schema if name in self.tools else None

    def list_tools(self) -> types.ListToolsResult:
        hidden = self.write_tools if self.config.read_only else frozenset()
        return types.ListToolsResult(tools=[t for n, t in self.tools.items() if n not in hidden])

    async def call_tool(
        self, params: types.CallToolRequestParams, verdict: RequestVerdict | None
    ) -> types.CallToolResult:
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
            return self._failed(echoing(ToolFailure.from_inventory(error), echo))
        except ToolFailure as failure:
            return self._failed(echoing(failure, echo))
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
        return tool_result(output)

    def _check_call(
        self, name: str, arguments: dict[str, Any], verdict: RequestVerdict | None
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
        problems = argument_problems(self.tools[name].input_schema, arguments)
        errors = sorted(self.validators[name].iter_errors(arguments), key=lambda e: list(e.path))
        if problems or errors:
            # pydantic's words when it would refuse too; a value it would coerce (``"7"`` for an
            # integer) the double cannot use, and refuses in the same shape.
            problems = problems or [
                (".".join(map(str, e.path)) or name, str(e.message), "value_error", e.instance)
                for e in errors
            ]
            raise MCPError(INVALID_PARAMS_CODE, invalid_params_text(name, problems))
        if (
            passthrough
            and auth == "bad"
            and name not in ("get_session_info", "reset_session_branch")
        ):
            raise tool_refusal(name, arguments)

    def _failed(self, failure: ToolFailure) -> types.CallToolResult:
        if self.config.error_style == "isError":
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=failure.text)], is_error=True
            )
        raise MCPError(failure.code, failure.message())

    # --- what each tool answers ---------------------------------------------------------

    def _get_schema(self, args: dict[str, Any]) -> Any:
        kind = args.get("kind")
        if kind is None:
            return json_text(self.inventory.catalog())
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
        """The real server's three keys, no more (its version is in ``serverInfo``)."""
        return {
            "session_branch": self.state.session_branch,
            "has_session_branch": self.state.session_branch is not None,
            "infrahub_address": INFRAHUB_ADDRESS,
        }

    def _query_graphql(self, args: dict[str, Any]) -> Any:
        query: str = args["query"]
        try:
            operation, data = run_graphql(self.inventory, query)
        except GraphQLSyntaxError as error:
            raise ToolFailure(error.message) from None
        except InventoryError as error:
            # Infrahub refused the query: the real server quotes infrahub-sdk's GraphQLError
            # (the query, then Infrahub's errors as Python prints the list) and its remediation.
            errors = [{"message": error.message}]
            raise ToolFailure(
                f"An error occurred while executing the GraphQL Query {query}, {errors}"
                f"\n\nRemediation: {GRAPHQL_REMEDIATION}"
            ) from None
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
