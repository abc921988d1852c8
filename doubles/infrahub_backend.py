"""A small fake Infrahub: the HTTP API the real infrahub-mcp server calls, over the double's data.

Why: the contract tests (``tests/test_contract_infrahub_mcp.py``) run the real infrahub-mcp 1.2.0
in token-passthrough mode and compare it with the MCP double. The real server needs an Infrahub
behind it; a real Infrahub (graph database, task workers, minutes to start) is far too heavy for
a test. This backend answers the requests that infrahub-sdk 1.23 (the real server's client) makes
for the tools agentq uses, from the same inventory the MCP double serves (``doubles.inventory``),
so the two servers can be asked the same questions and must give the same answers:

- ``GET /api/schema?branch=<b>``: the schema of the inventory's kinds, in the shape of Infrahub's
  ``SchemaRootAPI`` (``{"main": <hash>, "nodes": [...], "generics": [], ...}``). An unknown branch
  is HTTP 400, which the SDK turns into ``BranchNotFoundError``.
- ``POST /graphql`` and ``POST /graphql/<branch>``: queries over the inventory (the subset of
  GraphQL that ``doubles.inventory.graphql`` resolves, which covers the SDK's node and count
  queries and ``AccountProfile``, agentq's token proof). GraphQL errors come back as Infrahub
  sends them: ``{"data": null, "errors": [{"message": ...}]}``. Mutations are refused: this
  instance is read only, so a contract test cannot change what the next one sees.
- ``GET /schema.graphql``: the inventory's SDL (the ``infrahub://graphql-schema`` resource).

Authentication is Infrahub's for API tokens: the token comes in ``X-INFRAHUB-KEY`` (the header
the SDK sends an ``api_token`` in), and a token this instance does not know, or no token at all
(anonymous access is off here), gets HTTP 401 with Infrahub's error body
``{"data": null, "errors": [{"message": "Invalid token", "extensions": {"code": 401}}]}``. A value
in ``Authorization`` is a JWT to Infrahub, never an API token; this backend issues no JWTs, so one
is refused the same way (and recorded as such, which is how a test would see a client sending the
token in the wrong header).

Admin endpoints: ``GET /health``; ``GET /_backend/requests`` lists every API request in arrival
order (method, path, GraphQL operation, which header carried a credential, the SHA-256 of that
credential, ``ok``/``bad``/``missing``, the HTTP status); ``POST /_backend/reset`` clears it. Only a
fingerprint of a token is kept, never the token: the suite scans logs and records for leaked
tokens, and a fingerprint still proves that exactly the user's token arrived.

Run it with ``python -m doubles.infrahub_backend --port 8000 --token T`` or build it in-process
with :func:`build_app`.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from doubles.asgi import serve
from doubles.inventory import Inventory, InventoryError, KindSchema, Node, build_inventory
from doubles.inventory.graphql import execute, graphql_sdl

__all__ = ["BackendConfig", "BackendRecord", "build_app", "main", "schema_document"]

DEFAULT_BRANCH = "main"
INVALID_TOKEN = "Invalid token"  # noqa: S105 - Infrahub's message for an unknown API key
API_TOKEN_HEADER = "x-infrahub-key"  # noqa: S105 - a header name
# Ids of schema elements are stable across runs, like the inventory's node ids.
_SCHEMA_NAMESPACE = uuid.UUID("0b7e3f52-5c1d-4a8e-9f26-3d4c5b6a7e81")


@dataclass(frozen=True)
class BackendConfig:
    """``tokens``: the API tokens this instance knows; ``branches``: the branches it has."""

    tokens: tuple[str, ...] = ()
    branches: tuple[str, ...] = (DEFAULT_BRANCH,)


@dataclass
class BackendRecord:
    """One API request as ``GET /_backend/requests`` lists it (no token, only its fingerprint)."""

    t: float
    method: str
    path: str
    operation: str | None = None
    credential_header: str | None = None
    token_sha256: str | None = None
    auth: str = "missing"
    status: int | None = None


class _BackendInventory(Inventory):
    """The double's inventory, plus Infrahub's ``any__value`` filter (what ``search_nodes`` sends:
    a value matched against every attribute of the kind; with ``partial_match``, as a substring,
    ignoring case)."""

    @classmethod
    def of(cls, inventory: Inventory) -> _BackendInventory:
        backend = cls(inventory.schemas.values())
        backend.nodes = inventory.nodes
        return backend

    def select(
        self, kind: str, filters: Mapping[str, Any] | None = None, partial_match: bool = False
    ) -> list[Node]:
        wanted = dict(filters or {})
        needle = wanted.pop("any__value", None)
        nodes = super().select(kind, wanted, partial_match)
        if needle is None:
            return nodes
        return [
            n
            for n in nodes
            if any(_matches(v, needle, partial_match) for v in n.attributes.values())
        ]


def _matches(value: Any, needle: Any, partial: bool) -> bool:
    if value is None:
        return False
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if partial:
        return str(needle).lower() in text.lower()
    return text == str(needle)


@dataclass
class _State:
    config: BackendConfig
    inventory: Inventory
    records: list[BackendRecord] = field(default_factory=list)


def fingerprint(token: str) -> str:
    """What the records keep of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


# --- the schema, as /api/schema serves it ---------------------------------------------------


def _schema_id(*parts: str) -> str:
    return str(uuid.uuid5(_SCHEMA_NAMESPACE, ":".join(parts)))


def _relationship_identifier(inventory: Inventory, schema: KindSchema, name: str) -> str | None:
    """The edge's identifier; a ``many`` side shares the one of the peer's ``one`` side."""
    rel = schema.relationship(name)
    if rel is None:
        return None
    if rel.identifier is not None:
        return rel.identifier
    peer = inventory.schemas.get(rel.peer)
    inverse = peer.relationship(rel.inverse) if peer is not None and rel.inverse else None
    return inverse.identifier if inverse is not None else None


def _node_schema(inventory: Inventory, schema: KindSchema) -> dict[str, Any]:
    """One kind as a ``NodeSchemaAPI`` object (the fields the SDK and the MCP server read)."""
    attributes = [
        {
            "id": _schema_id(schema.kind, "attribute", a.name),
            "name": a.name,
            "kind": a.kind,
            "label": a.name.replace("_", " ").title(),
            "optional": a.optional,
            "unique": a.name in schema.human_friendly_id,
            "read_only": False,
            "inherited": False,
            "order_weight": 1000 * (index + 1),
        }
        for index, a in enumerate(schema.attributes)
    ]
    relationships = [
        {
            "id": _schema_id(schema.kind, "relationship", r.name),
            "name": r.name,
            "peer": r.peer,
            "kind": "Generic",
            "label": r.name.replace("_", " ").title(),
            "identifier": _relationship_identifier(inventory, schema, r.name),
            "cardinality": r.cardinality,
            "optional": r.optional,
            "min_count": 0 if r.optional else 1,
            "max_count": 1 if r.cardinality == "one" else 0,
            "direction": "bidirectional",
            "inherited": False,
            "read_only": False,
            "order_weight": 1000 * (len(schema.attributes) + index + 1),
        }
        for index, r in enumerate(schema.relationships)
    ]
    return {
        "id": _schema_id(schema.kind),
        "name": schema.kind.removeprefix(schema.namespace),
        "namespace": schema.namespace,
        "kind": schema.kind,
        "label": schema.label,
        "description": None,
        "branch": "aware",
        "default_filter": None,
        "human_friendly_id": [f"{path}__value" for path in schema.human_friendly_id],
        "display_label": None,
        "include_in_menu": True,
        "inherit_from": [],
        "generate_profile": False,
        "generate_template": False,
        "attributes": attributes,
        "relationships": relationships,
        "hash": hashlib.md5(schema.kind.encode(), usedforsecurity=False).hexdigest(),
    }


def schema_document(inventory: Inventory) -> dict[str, Any]:
    """The ``/api/schema`` answer for ``inventory``: every kind as a node, nothing generic."""
    nodes = [_node_schema(inventory, inventory.schemas[kind]) for kind in sorted(inventory.schemas)]
    digest = hashlib.md5(  # a version stamp, as Infrahub's "main" schema hash
        json.dumps(nodes, sort_keys=True).encode(), usedforsecurity=False
    ).hexdigest()
    return {"main": digest, "nodes": nodes, "generics": [], "profiles": [], "templates": []}


# --- the HTTP API ---------------------------------------------------------------------------


_VARIABLE_DEFINITIONS = re.compile(r"^(\s*(?:query|mutation)\s+\w+\s*)\([^)]*\)")
_VARIABLE = re.compile(r"\$(\w+)")
_ORDER_ARGUMENT = re.compile(r"\border\s*:\s*\{[^{}]*\}")


def _inline_sdk_query(query: str, variables: Mapping[str, Any]) -> str:
    """The SDK's query in the GraphQL subset ``doubles.inventory.graphql`` resolves.

    The SDK's node queries use two things that subset does not: variables (``$offset``,
    ``$limit``), here written into the query as literals, and ``order: {disable: true}``, dropped
    (the inventory returns nodes in one fixed order anyway). An unknown variable stays as it is
    and fails to parse, as a query with an undefined variable fails on Infrahub.
    """
    query = _VARIABLE_DEFINITIONS.sub(r"\1", query, count=1)
    query = _ORDER_ARGUMENT.sub("", query)
    return _VARIABLE.sub(
        lambda m: json.dumps(variables[m.group(1)]) if m.group(1) in variables else m.group(0),
        query,
    )


def _infrahub_error(message: str, status: int) -> JSONResponse:
    """An error body as Infrahub's API exception handler writes it."""
    body = {"data": None, "errors": [{"message": message, "extensions": {"code": status}}]}
    return JSONResponse(body, status_code=status)


class _Backend:
    def __init__(self, config: BackendConfig) -> None:
        self.state = _State(config=config, inventory=_BackendInventory.of(build_inventory()))
        self.schema = schema_document(self.state.inventory)

    def authenticate(self, request: Request) -> tuple[BackendRecord, bool]:
        """Record the request and say whether it carries an API token this instance knows."""
        record = BackendRecord(t=time.time(), method=request.method, path=request.url.path)
        self.state.records.append(record)
        for header in (API_TOKEN_HEADER, "authorization"):
            value = request.headers.get(header)
            if value is None:
                continue
            if header == "authorization":
                scheme, _, rest = value.partition(" ")
                value = rest.strip() if scheme.lower() == "bearer" else value.strip()
            record.credential_header = header
            record.token_sha256 = fingerprint(value)
            known = header == API_TOKEN_HEADER and any(
                hmac.compare_digest(value.encode(), token.encode())
                for token in self.state.config.tokens
            )
            record.auth = "ok" if known else "bad"
            return record, known
        return record, False

    def refuse(self, record: BackendRecord) -> Response:
        record.status = 401
        return _infrahub_error(INVALID_TOKEN, 401)

    async def api_schema(self, request: Request) -> Response:
        record, ok = self.authenticate(request)
        if not ok:
            return self.refuse(record)
        branch = request.query_params.get("branch") or DEFAULT_BRANCH
        if branch not in self.state.config.branches:
            record.status = 400
            return _infrahub_error(f"Branch: {branch} not found.", 400)
        record.status = 200
        return JSONResponse(self.schema)

    async def graphql_schema(self, request: Request) -> Response:
        record, ok = self.authenticate(request)
        if not ok:
            return self.refuse(record)
        record.status = 200
        return PlainTextResponse(graphql_sdl(self.state.inventory))

    async def graphql(self, request: Request) -> Response:
        record, ok = self.authenticate(request)
        if not ok:
            return self.refuse(record)
        branch = request.path_params.get("branch", DEFAULT_BRANCH)
        if branch not in self.state.config.branches:
            record.status = 400
            return _infrahub_error(f"Branch: {branch} not found.", 400)
        try:
            payload = json.loads(await request.body())
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            record.status = 400
            return _infrahub_error("The request body must be a JSON object with a query.", 400)
        operation = payload.get("operationName")
        record.operation = operation if isinstance(operation, str) else None
        record.status = 200
        variables = payload.get("variables")
        query = _inline_sdk_query(
            payload["query"], variables if isinstance(variables, dict) else {}
        )
        try:
            kind, data = execute(self.state.inventory, query)
        except InventoryError as error:
            # Infrahub's own words only: the remediation is what the MCP server adds to them.
            return JSONResponse({"data": None, "errors": [{"message": error.message}]})
        if kind != "query":
            return JSONResponse(
                {"data": None, "errors": [{"message": "This Infrahub only answers queries."}]}
            )
        return JSONResponse({"data": data})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def requests(self, request: Request) -> Response:
        return JSONResponse([asdict(r) for r in self.state.records])

    async def reset(self, request: Request) -> Response:
        self.state.records.clear()
        return JSONResponse({"status": "ok"})


def build_app(config: BackendConfig | None = None) -> Starlette:
    """The fake Infrahub as an ASGI app (``app.state.backend`` holds its records)."""
    backend = _Backend(config or BackendConfig())
    app = Starlette(
        routes=[
            Route("/api/schema", backend.api_schema, methods=["GET"]),
            Route("/schema.graphql", backend.graphql_schema, methods=["GET"]),
            Route("/graphql", backend.graphql, methods=["POST"]),
            Route("/graphql/{branch:path}", backend.graphql, methods=["POST"]),
            Route("/health", backend.health, methods=["GET"]),
            Route("/_backend/requests", backend.requests, methods=["GET"]),
            Route("/_backend/reset", backend.reset, methods=["POST"]),
        ]
    )
    app.state.backend = backend
    return app


# --- command line ---------------------------------------------------------------------------


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> BackendConfig:
    from_env = [t.strip() for t in environ.get("INFRAHUB_BACKEND_TOKENS", "").split(",")]
    tokens = tuple(dict.fromkeys(t for t in [*args.token, *from_env] if t))
    return BackendConfig(
        tokens=tokens, branches=tuple(dict.fromkeys([DEFAULT_BRANCH, *args.branch]))
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fake Infrahub under uvicorn until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m doubles.infrahub_backend",
        description="A fake Infrahub API over the MCP double's inventory, for contract tests.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        help="an API token this instance knows (repeatable; also INFRAHUB_BACKEND_TOKENS=a,b)",
    )
    parser.add_argument("--branch", action="append", default=[], help="another branch it has")
    args = parser.parse_args(argv)
    serve(build_app(config_from_args(args, os.environ)), args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
