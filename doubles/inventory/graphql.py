"""The inventory's GraphQL face: its SDL, a parser for the subset agents write, and a resolver.

``query_graphql`` and ``mutate_graphql`` post a query document to Infrahub's ``/graphql``; the
``infrahub://graphql-schema`` resource serves its SDL. The double has no GraphQL server, so this
module parses what agents write against Infrahub in practice (named or anonymous operations,
aliases, arguments, nested selections; no fragments or variables) and answers it from an
:class:`~doubles.inventory.store.Inventory` in Infrahub's shapes (``count``, ``edges { node }``,
``<attribute> { value }``). A document that does not parse raises :class:`GraphQLSyntaxError`
with the text Infrahub's parser gives; a field that does not exist, an :class:`InventoryError`.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, NoReturn

from doubles.inventory.model import ID_NAMESPACE, InventoryError, Node
from doubles.inventory.store import Inventory

__all__ = ["ACCOUNT_ID", "ACCOUNT_NAME", "GraphQLSyntaxError", "execute", "graphql_sdl"]

# The account behind every accepted token (what `AccountProfile` answers).
ACCOUNT_ID = str(uuid.uuid5(ID_NAMESPACE, "account:agentq-user"))
ACCOUNT_NAME = "agentq-user"


class GraphQLSyntaxError(InventoryError):
    """The query text does not parse (the real server rejects it before calling Infrahub)."""


# --- the schema it serves ------------------------------------------------------------------


def graphql_sdl(inventory: Inventory) -> str:
    """A small GraphQL SDL for the kinds (what ``infrahub://graphql-schema`` serves)."""
    scalar_types = {"Number": "BigInt", "Boolean": "Boolean"}
    lines = [
        "type Query {",
        *(
            f"  {kind}(offset: Int, limit: Int, partial_match: Boolean, ids: [ID]):"
            f" Paginated{kind}!"
            for kind in sorted(inventory.schemas)
        ),
        "}",
        "",
    ]
    for kind in sorted(inventory.schemas):
        schema = inventory.schemas[kind]
        lines += [
            f"type Paginated{kind} {{",
            "  count: Int!",
            f"  edges: [Edged{kind}!]!",
            "}",
            "",
            f"type Edged{kind} {{",
            f"  node: {kind}",
            "}",
            "",
            f"type {kind} {{",
            "  id: String",
            "  display_label: String",
            "  hfid: [String]",
        ]
        for attribute in schema.attributes:
            value_type = scalar_types.get(attribute.kind, "String")
            lines.append(f"  {attribute.name}: {value_type}Attribute")
        for rel in schema.relationships:
            if rel.cardinality == "one":
                lines.append(f"  {rel.name}: NestedEdged{rel.peer}")
            else:
                lines.append(f"  {rel.name}: NestedPaginated{rel.peer}!")
        lines += ["}", ""]
    lines += [
        "type StringAttribute {\n  value: String\n}",
        "type BigIntAttribute {\n  value: BigInt\n}",
        "type BooleanAttribute {\n  value: Boolean\n}",
        "",
    ]
    return "\n".join(lines)


# --- answering a document ------------------------------------------------------------------


def execute(inventory: Inventory, query: str) -> tuple[str, dict[str, Any]]:
    """Run a query document: returns ``(operation type, data)``.

    Supports what agents write against Infrahub in practice: ``query { Kind(filters...) {
    count edges { node { id display_label hfid name { value } site { node { ... } } } } } }``.
    Anything else is a GraphQL error, as Infrahub would answer it.
    """
    operation, selections = _parse_graphql(query)
    if operation == "mutation":
        return operation, {field.alias: {"ok": True} for field in selections}
    data: dict[str, Any] = {}
    for selection in selections:
        if selection.name == "__typename":
            data[selection.alias] = "Query"
            continue
        if selection.name == "AccountProfile":
            # The token's own account: what agentq reads to prove a token (Infrahub answers
            # it for any account; an unknown token never gets this far: 401).
            profile = {"id": ACCOUNT_ID, "display_label": ACCOUNT_NAME}
            data[selection.alias] = {
                f.alias: profile.get(f.name) for f in selection.selections
            } or profile
            continue
        if selection.name not in inventory.schemas:
            raise InventoryError(
                f"Cannot query field '{selection.name}' on type 'Query'.",
                "Call get_schema() to list valid kinds, or get_schema(kind='...') to see "
                "attributes and filters.",
            )
        data[selection.alias] = _resolve_paginated(inventory, selection.name, selection, None)
    return operation, data


def _resolve_paginated(
    inventory: Inventory, kind: str, selection: _Field, scope: list[Node] | None
) -> dict[str, Any]:
    arguments = dict(selection.arguments)
    offset = int(arguments.pop("offset", 0) or 0)
    limit = arguments.pop("limit", None)
    partial = bool(arguments.pop("partial_match", False))
    ids = arguments.pop("ids", None)
    nodes = inventory.select(kind, arguments, partial) if scope is None else scope
    if ids is not None:
        nodes = [n for n in nodes if n.id in ids]
    total = len(nodes)
    nodes = nodes[offset:] if limit is None else nodes[offset : offset + int(limit)]
    result: dict[str, Any] = {}
    for sub in selection.selections:
        if sub.name == "count":
            result[sub.alias] = total
        elif sub.name == "edges":
            node_selection = next((s for s in sub.selections if s.name == "node"), None)
            result[sub.alias] = [
                {node_selection.alias: _resolve_node(inventory, n, node_selection)}
                if node_selection
                else {}
                for n in nodes
            ]
        elif sub.name == "__typename":
            result[sub.alias] = f"Paginated{kind}"
        else:
            raise InventoryError(f"Cannot query field '{sub.name}' on type 'Paginated{kind}'.")
    return result


def _resolve_node(inventory: Inventory, node: Node, selection: _Field) -> dict[str, Any]:
    schema = inventory.schemas[node.kind]
    result: dict[str, Any] = {}
    for sub in selection.selections:
        attribute = schema.attribute(sub.name)
        rel = schema.relationship(sub.name)
        if sub.name == "id":
            result[sub.alias] = node.id
        elif sub.name == "display_label":
            result[sub.alias] = inventory.label(node)
        elif sub.name == "hfid":
            result[sub.alias] = inventory.hfid(node)
        elif sub.name == "__typename":
            result[sub.alias] = node.kind
        elif attribute is not None:
            value = node.attributes.get(attribute.name)
            shaped: dict[str, Any] = {}
            for leaf in sub.selections or [_Field("value")]:
                if leaf.name != "value":
                    raise InventoryError(
                        f"Cannot query field '{leaf.name}' on type '{attribute.kind}Attribute'."
                    )
                shaped[leaf.alias] = value
            result[sub.alias] = shaped
        elif rel is not None and rel.cardinality == "one":
            peers = inventory.related(node, rel)
            inner = next((s for s in sub.selections if s.name == "node"), None)
            result[sub.alias] = (
                {inner.alias: _resolve_node(inventory, peers[0], inner) if peers else None}
                if inner
                else {}
            )
        elif rel is not None:
            result[sub.alias] = _resolve_paginated(
                inventory, rel.peer, sub, inventory.related(node, rel)
            )
        else:
            raise InventoryError(f"Cannot query field '{sub.name}' on type '{node.kind}'.")
    return result


# --- a GraphQL subset parser ----------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<skip>[\s,]+|\#[^\n]*)
    |(?P<spread>\.\.\.)
    |(?P<punct>[{}():\[\]!$=@])
    |(?P<string>"(?:[^"\\]|\\.)*")
    |(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    |(?P<name>[_A-Za-z][_0-9A-Za-z]*)
    """,
    re.VERBOSE,
)


@dataclass
class _Field:
    name: str
    alias: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    selections: list[_Field] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.alias = self.alias or self.name


class _Parser:
    """Recursive descent over the subset of GraphQL the double answers (no fragments, variables)."""

    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str, int]] = []
        position = 0
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None or match.lastgroup is None:
                self.fail(f"Unexpected character {text[position]!r}", position)
            if match.lastgroup != "skip":
                self.tokens.append((match.lastgroup, match.group(), position))
            position = match.end()
        self.index = 0
        self.length = len(text)

    def fail(self, message: str, position: int | None = None) -> NoReturn:
        at = self.length if position is None else position
        raise GraphQLSyntaxError(
            f"Invalid GraphQL syntax: Syntax Error: {message} (at character {at})."
        )

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        token = self.peek()
        if token is None:
            self.fail(f"Expected {value or kind or 'more input'}, found <EOF>")
        if (value is not None and token[1] != value) or (kind is not None and token[0] != kind):
            self.fail(f"Expected {value or kind}, found {token[1]!r}", token[2])
        self.index += 1
        return token[1]

    def document(self) -> tuple[str, list[_Field]]:
        token = self.peek()
        operation = "query"
        if token is not None and token[1] in ("query", "mutation", "subscription"):
            operation = self.take()
            nxt = self.peek()
            if nxt is not None and nxt[0] == "name":
                self.take()
            nxt = self.peek()
            if nxt is not None and nxt[1] == "(":
                self.fail("variables are not supported by this server", nxt[2])
        selections = self.selection_set()
        extra = self.peek()
        if extra is not None:
            self.fail(f"Unexpected {extra[1]!r}; only one operation is supported", extra[2])
        return operation, selections

    def selection_set(self) -> list[_Field]:
        self.take("{")
        selections: list[_Field] = []
        while True:
            token = self.peek()
            if token is None:
                self.fail("Expected Name, found <EOF>")
            if token[1] == "}":
                self.take()
                if not selections:
                    self.fail("Expected Name, found '}'", token[2])
                return selections
            if token[0] == "spread":
                self.fail("fragments are not supported by this server", token[2])
            selections.append(self.field())

    def field(self) -> _Field:
        name = self.take(kind="name")
        alias = name
        token = self.peek()
        if token is not None and token[1] == ":":
            self.take()
            name = self.take(kind="name")
        result = _Field(name=name, alias=alias)
        token = self.peek()
        if token is not None and token[1] == "(":
            self.take()
            while (token := self.peek()) is not None and token[1] != ")":
                key = self.take(kind="name")
                self.take(":")
                result.arguments[key] = self.value()
            self.take(")")
        token = self.peek()
        if token is not None and token[1] == "{":
            result.selections = self.selection_set()
        return result

    def value(self) -> Any:
        token = self.peek()
        if token is None:
            self.fail("Expected value, found <EOF>")
        kind, text, position = token
        if text == "[":
            self.take()
            items = []
            while (token := self.peek()) is not None and token[1] != "]":
                items.append(self.value())
            self.take("]")
            return items
        self.index += 1
        if kind == "string":
            return json.loads(text)
        if kind == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "name":
            return {"true": True, "false": False, "null": None}.get(text, text)
        self.fail(f"Unexpected {text!r}", position)


def _parse_graphql(query: str) -> tuple[str, list[_Field]]:
    return _Parser(query).document()
