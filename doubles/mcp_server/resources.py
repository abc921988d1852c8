"""The resources of infrahub-mcp 1.2.0: the schema catalog, a kind's detail, the GraphQL SDL and
the branches, listed with the real server's names, descriptions and MIME types.

Reading one answers from the double's inventory and branches, in the real server's formats
(JSON for the catalog and branches, TOON for a kind's detail), and fails with its codes and
texts: an unknown URI, an unknown kind, or in passthrough mode a missing or rejected token.
"""

from __future__ import annotations

from typing import Any

import mcp_types as types
from mcp.shared.exceptions import MCPError

from doubles.inventory.graphql import graphql_sdl
from doubles.mcp_server.auth import resource_refusal
from doubles.mcp_server.config import DEFAULT_BRANCH
from doubles.mcp_server.errors import INTERNAL_ERROR_CODE, RESOURCE_NOT_FOUND_CODE
from doubles.mcp_server.state import DoubleState, RequestVerdict
from doubles.mcp_server.wire import FASTMCP_META, json_text
from doubles.toon import toon_encode

__all__ = [
    "RESOURCES",
    "SCHEMA_TEMPLATE",
    "list_resource_templates",
    "list_resources",
    "read_resource",
]

RESOURCES: tuple[dict[str, Any], ...] = (
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
SCHEMA_TEMPLATE: dict[str, Any] = {
    "uriTemplate": "infrahub://schema/{kind}",
    "name": "Schema Kind Detail",
    "description": "Full schema definition for a specific node kind: attributes, relationships, "
    "and the complete set of filters accepted by get_nodes. Relationships include one level of "
    "inlined peer schemas when INFRAHUB_MCP_SCHEMA_EXPAND_PEERS is enabled (the default). Fetch "
    "this before filtering nodes of an unfamiliar kind. Arrays are encoded in TOON tabular format: "
    "header declares fields once, each row is one entry.",
    "mimeType": "text/plain",
}


def list_resources() -> types.ListResourcesResult:
    return types.ListResourcesResult(
        resources=[types.Resource.model_validate({**r, "_meta": FASTMCP_META}) for r in RESOURCES]
    )


def list_resource_templates() -> types.ListResourceTemplatesResult:
    template = types.ResourceTemplate.model_validate({**SCHEMA_TEMPLATE, "_meta": FASTMCP_META})
    return types.ListResourceTemplatesResult(resource_templates=[template])


def read_resource(
    state: DoubleState, uri: str, verdict: RequestVerdict | None
) -> types.ReadResourceResult:
    """``resources/read`` of ``uri``, checked as the real server checks it, in its order."""
    kind = uri.removeprefix("infrahub://schema/") if uri.startswith("infrahub://schema/") else None
    known = uri in {r["uri"] for r in RESOURCES} or bool(kind)
    if not known:
        raise MCPError(RESOURCE_NOT_FOUND_CODE, f"Resource not found: Unknown resource: '{uri}'")
    if state.config.auth_mode == "passthrough" and verdict is not None:
        refusal = resource_refusal(uri, verdict.record.auth)
        if refusal is not None:
            raise refusal
    inventory = state.inventory
    if kind:
        if kind not in inventory.schemas:
            raise MCPError(
                INTERNAL_ERROR_CODE,
                f"Internal error: Schema not found for kind '{kind}'. "
                "Read infrahub://schema to list valid kind names.",
            )
        text, mime = toon_encode(inventory.schema_detail(kind)), "text/plain"
    elif uri == "infrahub://schema":
        text, mime = json_text(inventory.catalog()), "application/json"
    elif uri == "infrahub://graphql-schema":
        text, mime = graphql_sdl(inventory), "text/plain"
    else:
        branches = {
            name: {"is_default": name == DEFAULT_BRANCH, "description": description}
            for name, description in state.branches.items()
        }
        text, mime = json_text(branches), "application/json"
    return types.ReadResourceResult(
        contents=[types.TextResourceContents(uri=uri, mime_type=mime, text=text)]
    )
