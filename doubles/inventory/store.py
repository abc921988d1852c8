"""The inventory's nodes, and the reads and writes the MCP double's tools make over them.

:class:`Inventory` answers in the shapes the real infrahub-mcp 1.2.0 tools build from Infrahub's
answers: the schema catalog and a kind's detail with its filter keys, node labels or attribute
rows, filtered and searched node lists, and the upserts and deletes of the write tools. It also
makes the changes a test asks the double for between two runs (a node added like another, one
renamed, one removed). Bad input an agent can correct (an unknown kind, a bad filter key, a
missing identifier) raises :class:`~doubles.inventory.model.InventoryError` with the real server's
remediation hint. Traversal (:mod:`doubles.inventory.traversal`) and GraphQL
(:mod:`doubles.inventory.graphql`) work over it from their own modules.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from doubles.inventory.model import (
    HFID_SEPARATOR,
    Attribute,
    InventoryError,
    KindSchema,
    Node,
    Relationship,
    UnknownKindError,
    derive_node_id,
)

__all__ = ["Inventory"]

# The real server's attribute-kind -> filter-type map (anything else is a String filter).
_FILTER_TYPES = {
    "Text": "String",
    "Number": "Integer",
    "Boolean": "Boolean",
    "DateTime": "DateTime",
}

# Keys get_nodes refuses inside ``filters``: they are arguments of the SDK call itself.
_RESERVED_FILTER_KEYS = frozenset(
    {
        "kind",
        "branch",
        "partial_match",
        "parallel",
        "order",
        "populate_store",
        "prefetch_relationships",
        "at",
        "timeout",
        "offset",
        "limit",
        "include",
        "exclude",
        "fragment",
        "property",
        "include_metadata",
    }
)

_NO_IDENTIFIER = (
    "Provide either 'id' (UUID) or 'hfid' (human-friendly ID list) to identify the node."
)


class Inventory:
    """The nodes of each kind, and the reads and writes the MCP tools need over them."""

    def __init__(self, schemas: Iterable[KindSchema]) -> None:
        self.schemas: dict[str, KindSchema] = {s.kind: s for s in schemas}
        self.nodes: dict[str, Node] = {}

    def copy(self) -> Inventory:
        """An independent copy (writes to it leave this one untouched)."""
        other = Inventory(self.schemas.values())
        other.nodes = copy.deepcopy(self.nodes)
        return other

    # --- building -------------------------------------------------------------------------

    def add(self, kind: str, attributes: Mapping[str, Any], **peers: tuple[str, str]) -> Node:
        """Add a node; ``peers`` maps a ``one`` relationship to ``(peer kind, peer HFID)``."""
        schema = self.schemas[kind]
        node = Node(id="", kind=kind, attributes=dict(attributes))
        for rel in schema.relationships:
            if rel.cardinality == "one":
                node.peers[rel.name] = None
        for rel_name, (peer_kind, peer_hfid) in peers.items():
            peer = self.by_hfid(peer_kind, peer_hfid.split(HFID_SEPARATOR))
            if peer is None:
                raise KeyError(f"{kind}: no {peer_kind} {peer_hfid!r}")
            node.peers[rel_name] = peer.id
        return self._insert(node)

    def _insert(self, node: Node) -> Node:
        """Give ``node`` its id and keep it."""
        node.id = self._free_id(node.kind, self.hfid(node))
        self.nodes[node.id] = node
        return node

    def _free_id(self, kind: str, hfid: Sequence[str]) -> str:
        """The derived id, unless a renamed node still holds it (ids outlive names, as in
        Infrahub): then a derived id nobody holds."""
        node_id = derive_node_id(kind, hfid)
        suffix = 1
        while node_id in self.nodes:
            node_id = derive_node_id(kind, [*hfid, str(suffix)])
            suffix += 1
        return node_id

    # --- schema ---------------------------------------------------------------------------

    def catalog(self) -> dict[str, str]:
        """``{kind: label}`` for every kind, as ``infrahub://schema`` and ``get_schema()``."""
        return {kind: self.schemas[kind].label for kind in sorted(self.schemas)}

    def schema(
        self, kind: str, next_step: str = "Call get_schema() for details on any kind."
    ) -> KindSchema:
        """The kind's schema, or UnknownKindError listing the valid kinds."""
        try:
            return self.schemas[kind]
        except KeyError:
            raise UnknownKindError(kind, self.schemas, next_step) from None

    def filter_map(self, kind: str) -> list[dict[str, str]]:
        """Every filter key get_nodes accepts for ``kind``, with its GraphQL type."""
        schema = self.schema(kind)
        filters = [
            {"filter": f"{a.name}__value", "type": _FILTER_TYPES.get(a.kind, "String")}
            for a in schema.attributes
        ]
        for rel in schema.relationships:
            peer = self.schemas.get(rel.peer)
            if peer is None:
                continue
            filters.extend(
                {
                    "filter": f"{rel.name}__{a.name}__value",
                    "type": _FILTER_TYPES.get(a.kind, "String"),
                }
                for a in peer.attributes
            )
        return filters

    def schema_detail(self, kind: str, expand_peers: bool = True) -> dict[str, Any]:
        """Attributes, relationships (optionally with one level of peer schema) and filters."""
        schema = self.schema(kind)
        relationships: list[dict[str, Any]] = []
        for rel in schema.relationships:
            shaped = _shape_relationship(rel)
            peer = self.schemas.get(rel.peer)
            if expand_peers and peer is not None:
                shaped["peer_schema"] = {
                    "kind": peer.kind,
                    "label": peer.label,
                    "namespace": peer.namespace,
                    "attributes": [_shape_attribute(a) for a in peer.attributes],
                    "relationships": [_shape_relationship(r) for r in peer.relationships],
                }
            relationships.append(shaped)
        return {
            "kind": schema.kind,
            "label": schema.label,
            "namespace": schema.namespace,
            "attributes": [_shape_attribute(a) for a in schema.attributes],
            "relationships": relationships,
            "filters": self.filter_map(kind),
        }

    # --- naming ---------------------------------------------------------------------------

    def _path_value(self, node: Node, path: str) -> Any:
        """An attribute (``name``) or a ``one`` peer's attribute (``device__name``)."""
        rel_name, sep, attr_name = path.partition(HFID_SEPARATOR)
        if not sep:
            return node.attributes.get(path)
        peer_id = node.peers.get(rel_name)
        peer = self.nodes.get(peer_id) if peer_id else None
        return peer.attributes.get(attr_name) if peer else None

    def hfid(self, node: Node) -> list[str]:
        return [
            str(self._path_value(node, path)) for path in self.schemas[node.kind].human_friendly_id
        ]

    def label(self, node: Node) -> str:
        template = self.schemas[node.kind].display_label
        return re.sub(r"\{(\w+)\}", lambda m: str(self._path_value(node, m.group(1))), template)

    def by_hfid(self, kind: str, hfid: Sequence[str]) -> Node | None:
        wanted = [str(part) for part in hfid]
        return next((n for n in self.of_kind(kind) if self.hfid(n) == wanted), None)

    def of_kind(self, kind: str) -> Iterator[Node]:
        return (n for n in self.nodes.values() if n.kind == kind)

    def related(self, node: Node, rel: Relationship) -> list[Node]:
        """The peers of ``node`` over ``rel`` (``one``: zero or one; ``many``: the reverse)."""
        if rel.cardinality == "one":
            peer_id = node.peers.get(rel.name)
            peer = self.nodes.get(peer_id) if peer_id else None
            return [peer] if peer else []
        return [n for n in self.of_kind(rel.peer) if n.peers.get(rel.inverse or "") == node.id]

    def node_dict(self, node: Node) -> dict[str, Any]:
        """A node as get_nodes(include_attributes=True) shows it: text values, peer labels."""
        schema = self.schemas[node.kind]
        data: dict[str, Any] = {"index": node.id}
        for attribute in schema.attributes:
            data[attribute.name] = str(node.attributes.get(attribute.name))
        for rel in schema.relationships:
            peers = [self.label(p) for p in self.related(node, rel)]
            data[rel.name] = (peers[0] if peers else None) if rel.cardinality == "one" else peers
        return data

    # --- reads ----------------------------------------------------------------------------

    def select(
        self, kind: str, filters: Mapping[str, Any] | None = None, partial_match: bool = False
    ) -> list[Node]:
        """The nodes of ``kind`` matching every filter (keys checked as the real server does)."""
        schema = self.schema(kind)
        filters = dict(filters or {})
        reserved = sorted(set(filters) & _RESERVED_FILTER_KEYS)
        if reserved:
            raise InventoryError(
                f"Filters contain reserved key(s): {reserved}.",
                f"Remove reserved key(s) and check infrahub://schema/{kind} for valid filter"
                " names.",
            )
        valid = {f["filter"] for f in self.filter_map(kind)}
        invalid = sorted(set(filters) - valid)
        if invalid:
            raise InventoryError(
                f"Invalid filter(s) for {kind}: {invalid}.",
                f"Valid filters for {kind}: {', '.join(sorted(valid))}\n"
                f"Call get_schema(kind='{kind}') for the full schema.",
            )
        matched = []
        for node in self.of_kind(schema.kind):
            if all(
                self._matches(node, key, value, partial_match) for key, value in filters.items()
            ):
                matched.append(node)
        return sorted(matched, key=self.label)

    def _matches(self, node: Node, key: str, wanted: Any, partial: bool) -> bool:
        parts = key.removesuffix("__value").split(HFID_SEPARATOR)
        if len(parts) == 1:
            candidates = [node.attributes.get(parts[0])]
        else:
            rel = self.schemas[node.kind].relationship(parts[0])
            peers = self.related(node, rel) if rel else []
            candidates = [peer.attributes.get(parts[1]) for peer in peers]
        return any(_value_matches(value, wanted, partial) for value in candidates)

    def search(self, kind: str, query: str, limit: int) -> list[str]:
        """Labels of nodes with any attribute containing ``query`` (case-insensitive)."""
        needle = query.lower()
        found = [
            self.label(node)
            for node in self.select(kind)
            if any(needle in _as_text(v).lower() for v in node.attributes.values() if v is not None)
        ]
        return found[:limit]

    # --- writes ---------------------------------------------------------------------------

    def _locate(self, kind: str, node_id: str | None, hfid: Sequence[str] | None) -> Node:
        remediation = _NO_IDENTIFIER
        node = self.nodes.get(node_id) if node_id else self.by_hfid(kind, hfid or [])
        if node is None or node.kind != kind:
            ident = node_id if node_id else list(hfid or [])
            raise InventoryError(
                f"Unable to find the node {ident} / {kind} in the database.", remediation
            )
        return node

    def upsert(
        self,
        kind: str,
        data: Mapping[str, Any],
        node_id: str | None = None,
        hfid: Sequence[str] | None = None,
    ) -> tuple[Node, list[str]]:
        """Create (no id/hfid) or update a node's scalar attributes; also returns unknown names."""
        schema = self.schema(kind)
        unknown = [name for name in data if schema.attribute(name) is None]
        known = {name: value for name, value in data.items() if name not in unknown}
        if node_id is not None or hfid is not None:
            node = self._locate(kind, node_id, hfid)
            node.attributes.update(known)
            return node, unknown
        missing = [a.name for a in schema.attributes if not a.optional and a.name not in known]
        if missing or unknown:
            raise InventoryError(
                f"{kind}: missing required attribute(s) {missing}"
                if missing
                else f"{kind}: unknown attribute(s) {unknown}",
                f"Check attribute names against infrahub://schema/{kind}.",
            )
        required_peers = [
            r.name for r in schema.relationships if r.cardinality == "one" and not r.optional
        ]
        if required_peers:
            raise InventoryError(
                f"{kind}: relationship(s) {required_peers} are mandatory.",
                "node_upsert sets scalar attributes only; create this node with mutate_graphql.",
            )
        attributes = {a.name: known.get(a.name) for a in schema.attributes}
        if (
            self.by_hfid(kind, [str(attributes.get(p)) for p in schema.human_friendly_id])
            is not None
        ):
            raise InventoryError(
                f"{kind}: a node with this human-friendly id already exists.",
                "Pass its id or hfid to update it instead.",
            )
        return self.add(kind, attributes), []

    def delete(
        self, kind: str, node_id: str | None = None, hfid: Sequence[str] | None = None
    ) -> Node:
        """Remove a node, and clear every link that pointed at it."""
        self.schema(kind)
        if node_id is None and not hfid:
            raise InventoryError(
                "No node identifier provided.",
                _NO_IDENTIFIER,
            )
        node = self._locate(kind, node_id, hfid)
        del self.nodes[node.id]
        for other in self.nodes.values():
            for rel_name, peer_id in other.peers.items():
                if peer_id == node.id:
                    other.peers[rel_name] = None
        return node

    # --- changes between runs (the double's admin endpoint) --------------------------------

    def named(self, kind: str, name: str) -> Node:
        """The node of ``kind`` whose human-friendly id, its parts joined by ``__``, is ``name``:
        how a test names a node (``atl1-edge1``, ``atl1-edge1__Ethernet1``)."""
        self.schema(kind)
        node = self.by_hfid(kind, name.split(HFID_SEPARATOR))
        if node is None:
            raise InventoryError(f"no {kind} named {name!r}")
        return node

    def add_like(self, kind: str, like: str, name: str) -> Node:
        """A new node named ``name`` with the attributes and ``one`` peers (site, rack,
        platform...) of the node named ``like``: a realistic node without spelling it out."""
        model = self.named(kind, like)
        attributes = copy.deepcopy(model.attributes)
        attributes.update(self._naming_attributes(model, name))
        return self._insert(Node(id="", kind=kind, attributes=attributes, peers=dict(model.peers)))

    def rename(self, kind: str, name: str, to: str) -> Node:
        """Give the node named ``name`` the name ``to``. Its id stays: in Infrahub a name is an
        attribute, so a report that keys on names sees a rename as one node gone, one new."""
        node = self.named(kind, name)
        node.attributes.update(self._naming_attributes(node, to))
        return node

    def remove(self, kind: str, name: str) -> Node:
        """Delete the node named ``name`` (:meth:`delete`: links to it are cleared)."""
        return self.delete(kind, node_id=self.named(kind, name).id)

    def _naming_attributes(self, node: Node, name: str) -> dict[str, str]:
        """The attribute values that give a node of ``node``'s kind, with ``node``'s peers, the
        human-friendly id ``name``. Only its own attributes can change (a part that is a peer's
        name must stay as it is), and no other node may have that name already."""
        paths = self.schemas[node.kind].human_friendly_id
        parts = name.split(HFID_SEPARATOR)
        if len(parts) != len(paths):
            raise InventoryError(
                f"{node.kind} names have {len(paths)} part(s) ({', '.join(paths)}) joined by "
                f"{HFID_SEPARATOR!r}; {name!r} has {len(parts)}"
            )
        values: dict[str, str] = {}
        for path, part in zip(paths, parts, strict=True):
            if HFID_SEPARATOR not in path:
                values[path] = part
            elif str(self._path_value(node, path)) != part:
                raise InventoryError(
                    f"{name!r}: the {path} part must stay {self._path_value(node, path)!r}"
                )
        if self.by_hfid(node.kind, parts) is not None:
            raise InventoryError(f"a {node.kind} named {name!r} already exists")
        return values


# --- small helpers --------------------------------------------------------------------------


def _shape_attribute(attribute: Attribute) -> dict[str, Any]:
    return {"name": attribute.name, "kind": attribute.kind, "optional": attribute.optional}


def _shape_relationship(rel: Relationship) -> dict[str, Any]:
    return {
        "name": rel.name,
        "peer": rel.peer,
        "cardinality": rel.cardinality,
        "optional": rel.optional,
    }


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _value_matches(actual: Any, wanted: Any, partial: bool) -> bool:
    if actual is None:
        return wanted is None
    if partial and isinstance(wanted, str):
        return wanted.lower() in _as_text(actual).lower()
    return _as_text(actual) == _as_text(wanted)
