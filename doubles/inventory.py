"""A small, fixed Infrahub inventory and the operations the MCP double answers from it.

The MCP double (``doubles.mcp_server``) has no Infrahub behind it; this module stands in for one.
The dataset is deterministic (ids are UUIDv5 of kind and human-friendly id), so a test, the demo
and a benchmark run all see the same nodes, labels and ids. The operations return the shapes the
real infrahub-mcp 1.2.0 tools build from Infrahub's answers (schema catalog and detail, node labels
or attribute rows, paths between nodes), so an agent reading them sees what it would see in
production. Failures an agent can correct (an unknown kind, a bad filter key) raise
:class:`InventoryError` carrying the remediation hint the real server would give.

Kinds: ``LocationSite``, ``OrganizationTenant``, ``DcimManufacturer``, ``DcimPlatform``,
``DcimRack``, ``DcimDevice``, ``DcimCable``, ``InterfacePhysical``, ``IpamPrefix`` and
``IpamIPAddress``. Other components (the offline demo model, the tests) rely on these names.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

__all__ = [
    "Attribute",
    "GraphQLSyntaxError",
    "Inventory",
    "InventoryError",
    "KindSchema",
    "Node",
    "Relationship",
    "UnknownKindError",
    "build_inventory",
]

# Fixed namespace for node ids: the same node has the same UUID in every process.
_ID_NAMESPACE = uuid.UUID("5f0c4b8e-3d1a-4c2b-9a7e-1b2c3d4e5f60")

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

_HFID_SEPARATOR = "__"
_NO_IDENTIFIER = (
    "Provide either 'id' (UUID) or 'hfid' (human-friendly ID list) to identify the node."
)
DEFAULT_TRAVERSAL_DEPTH = 10
# The account behind every accepted token (what `AccountProfile` answers).
ACCOUNT_ID = str(uuid.uuid5(_ID_NAMESPACE, "account:agentq-user"))
ACCOUNT_NAME = "agentq-user"


class InventoryError(Exception):
    """A failure the agent can act on: what went wrong, and (optionally) what to do instead.

    The MCP double turns it into the real server's ToolError text:
    ``<message>\\n\\nRemediation: <remediation>``.
    """

    def __init__(self, message: str, remediation: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.remediation = remediation

    def text(self) -> str:
        """The message as the real server words it, remediation included."""
        if self.remediation:
            return f"{self.message}\n\nRemediation: {self.remediation}"
        return self.message


class UnknownKindError(InventoryError):
    """The kind is not in the schema; the hint lists the kinds that are."""

    def __init__(self, kind: str, valid_kinds: Iterable[str], next_step: str) -> None:
        super().__init__(
            f"Schema not found for kind: {kind}.",
            f"Valid kinds: {', '.join(sorted(valid_kinds))}\n{next_step}",
        )
        self.kind = kind


class GraphQLSyntaxError(InventoryError):
    """The query text does not parse (the real server rejects it before calling Infrahub)."""


@dataclass(frozen=True)
class Attribute:
    """A scalar attribute of a kind (``kind`` is Infrahub's attribute kind: Text, Number...)."""

    name: str
    kind: str
    optional: bool = False


@dataclass(frozen=True)
class Relationship:
    """A relationship to another kind.

    Only ``one`` relationships are stored on nodes; a ``many`` relationship is the reverse of the
    peer's ``one`` relationship named ``inverse``, so the data never disagrees with itself.
    ``identifier`` names the edge for ``find_paths(relationship_filter=...)``.
    """

    name: str
    peer: str
    cardinality: Literal["one", "many"]
    optional: bool = True
    inverse: str | None = None
    identifier: str | None = None


@dataclass(frozen=True)
class KindSchema:
    """One node kind: attributes, relationships, and how its nodes are named.

    ``display_label`` is a format string over attribute names and ``<rel>__<attr>`` paths;
    ``human_friendly_id`` lists the same kind of paths, in order.
    """

    kind: str
    label: str
    namespace: str
    attributes: tuple[Attribute, ...]
    relationships: tuple[Relationship, ...]
    human_friendly_id: tuple[str, ...]
    display_label: str

    def attribute(self, name: str) -> Attribute | None:
        return next((a for a in self.attributes if a.name == name), None)

    def relationship(self, name: str) -> Relationship | None:
        return next((r for r in self.relationships if r.name == name), None)


@dataclass
class Node:
    """One object: attribute values and the ids of its ``one`` peers."""

    id: str
    kind: str
    attributes: dict[str, Any]
    peers: dict[str, str | None] = field(default_factory=dict)


def _text(name: str, optional: bool = False) -> Attribute:
    return Attribute(name, "Text", optional)


_SCHEMAS: tuple[KindSchema, ...] = (
    KindSchema(
        kind="OrganizationTenant",
        label="Tenant",
        namespace="Organization",
        attributes=(_text("name"), _text("description", True)),
        relationships=(
            Relationship("sites", "LocationSite", "many", inverse="tenant"),
            Relationship("devices", "DcimDevice", "many", inverse="tenant"),
        ),
        human_friendly_id=("name",),
        display_label="{name}",
    ),
    KindSchema(
        kind="LocationSite",
        label="Site",
        namespace="Location",
        attributes=(_text("name"), _text("description", True), _text("city", True)),
        relationships=(
            Relationship("tenant", "OrganizationTenant", "one", identifier="site__tenant"),
            Relationship("devices", "DcimDevice", "many", inverse="site"),
            Relationship("racks", "DcimRack", "many", inverse="site"),
            Relationship("prefixes", "IpamPrefix", "many", inverse="site"),
        ),
        human_friendly_id=("name",),
        display_label="{name}",
    ),
    KindSchema(
        kind="DcimManufacturer",
        label="Manufacturer",
        namespace="Dcim",
        attributes=(_text("name"), _text("description", True)),
        relationships=(Relationship("platforms", "DcimPlatform", "many", inverse="manufacturer"),),
        human_friendly_id=("name",),
        display_label="{name}",
    ),
    KindSchema(
        kind="DcimPlatform",
        label="Platform",
        namespace="Dcim",
        attributes=(_text("name"), _text("description", True), _text("network_os", True)),
        relationships=(
            Relationship(
                "manufacturer", "DcimManufacturer", "one", identifier="manufacturer__platform"
            ),
            Relationship("devices", "DcimDevice", "many", inverse="platform"),
        ),
        human_friendly_id=("name",),
        display_label="{name}",
    ),
    KindSchema(
        kind="DcimRack",
        label="Rack",
        namespace="Dcim",
        attributes=(_text("name"), Attribute("height", "Number")),
        relationships=(
            Relationship("site", "LocationSite", "one", optional=False, identifier="site__rack"),
            Relationship("devices", "DcimDevice", "many", inverse="rack"),
        ),
        human_friendly_id=("name",),
        display_label="{name}",
    ),
    KindSchema(
        kind="DcimDevice",
        label="Device",
        namespace="Dcim",
        attributes=(
            _text("name"),
            _text("description", True),
            Attribute("role", "Dropdown"),
            Attribute("status", "Dropdown"),
            _text("serial", True),
        ),
        relationships=(
            Relationship("site", "LocationSite", "one", optional=False, identifier="site__device"),
            Relationship("platform", "DcimPlatform", "one", identifier="platform__device"),
            Relationship("rack", "DcimRack", "one", identifier="rack__device"),
            Relationship("tenant", "OrganizationTenant", "one", identifier="device__tenant"),
            Relationship("interfaces", "InterfacePhysical", "many", inverse="device"),
        ),
        human_friendly_id=("name",),
        display_label="{name}",
    ),
    KindSchema(
        kind="InterfacePhysical",
        label="Physical Interface",
        namespace="Interface",
        attributes=(
            _text("name"),
            _text("description", True),
            Attribute("speed", "Number"),
            Attribute("enabled", "Boolean"),
            Attribute("mtu", "Number"),
        ),
        relationships=(
            Relationship(
                "device", "DcimDevice", "one", optional=False, identifier="device__interface"
            ),
            Relationship("ip_addresses", "IpamIPAddress", "many", inverse="interface"),
        ),
        human_friendly_id=("device__name", "name"),
        display_label="{device__name} {name}",
    ),
    KindSchema(
        kind="DcimCable",
        label="Cable",
        namespace="Dcim",
        attributes=(_text("label"), Attribute("status", "Dropdown"), _text("cable_type", True)),
        relationships=(
            Relationship(
                "a_side", "InterfacePhysical", "one", optional=False, identifier="cable__a_side"
            ),
            Relationship(
                "b_side", "InterfacePhysical", "one", optional=False, identifier="cable__b_side"
            ),
        ),
        human_friendly_id=("label",),
        display_label="{label}",
    ),
    KindSchema(
        kind="IpamPrefix",
        label="Prefix",
        namespace="Ipam",
        attributes=(
            Attribute("prefix", "IPNetwork"),
            _text("description", True),
            Attribute("status", "Dropdown"),
            Attribute("role", "Dropdown", True),
        ),
        relationships=(Relationship("site", "LocationSite", "one", identifier="site__prefix"),),
        human_friendly_id=("prefix",),
        display_label="{prefix}",
    ),
    KindSchema(
        kind="IpamIPAddress",
        label="IP Address",
        namespace="Ipam",
        attributes=(Attribute("address", "IPHost"), _text("description", True)),
        relationships=(
            Relationship("interface", "InterfacePhysical", "one", identifier="interface__ip"),
        ),
        human_friendly_id=("address",),
        display_label="{address}",
    ),
)

_SITES = (
    # name, description, city, tenant, platform of the edge router
    ("atl1", "Atlanta data center", "Atlanta", "Acme Networks", "Cisco IOS XR"),
    ("dfw1", "Dallas data center", "Dallas", "Acme Networks", "Cisco IOS XR"),
    ("jfk1", "New York data center", "New York", "Globex Corporation", "Juniper Junos"),
    ("ord1", "Chicago data center", "Chicago", "Globex Corporation", "Juniper Junos"),
)
_ROLES = ("edge", "spine", "leaf")
# Devices that are not simply "active", so status filters have something to find.
_STATUS = {"dfw1-spine1": "maintenance", "jfk1-leaf1": "provisioning"}
_INTERFACES = (
    # name, description, speed (Mbit/s), mtu
    ("Ethernet1", "uplink", 100000, 9214),
    ("Ethernet2", "downlink", 100000, 9214),
    ("Management0", "out-of-band management", 1000, 1500),
)
_DISABLED_INTERFACES = {("atl1-leaf1", "Ethernet2")}


def build_inventory() -> Inventory:
    """The dataset every double starts from (a fresh, independent copy each call)."""
    inventory = Inventory(_SCHEMAS)
    add = inventory.add
    for tenant, description in (
        ("Acme Networks", "Retail banking customer"),
        ("Globex Corporation", "Logistics customer"),
    ):
        add("OrganizationTenant", {"name": tenant, "description": description})
    for manufacturer in ("Arista", "Cisco", "Juniper"):
        add("DcimManufacturer", {"name": manufacturer, "description": None})
    for platform, network_os, manufacturer in (
        ("Arista EOS", "eos", "Arista"),
        ("Cisco IOS XR", "iosxr", "Cisco"),
        ("Juniper Junos", "junos", "Juniper"),
    ):
        add(
            "DcimPlatform",
            {
                "name": platform,
                "description": f"{manufacturer} network OS",
                "network_os": network_os,
            },
            manufacturer=("DcimManufacturer", manufacturer),
        )
    device_number = 0
    for site_index, (site, description, city, tenant, edge_platform) in enumerate(_SITES, 1):
        add(
            "LocationSite",
            {"name": site, "description": description, "city": city},
            tenant=("OrganizationTenant", tenant),
        )
        add("DcimRack", {"name": f"{site}-r01", "height": 42}, site=("LocationSite", site))
        add(
            "IpamPrefix",
            {
                "prefix": f"10.{site_index}.0.0/16",
                "description": f"{site} site supernet",
                "status": "active",
                "role": "supernet",
            },
            site=("LocationSite", site),
        )
        add(
            "IpamPrefix",
            {
                "prefix": f"10.{site_index}.255.0/24",
                "description": f"{site} management network",
                "status": "active",
                "role": "management",
            },
            site=("LocationSite", site),
        )
        for role_index, role in enumerate(_ROLES, 1):
            device_number += 1
            device = f"{site}-{role}1"
            platform = edge_platform if role == "edge" else "Arista EOS"
            add(
                "DcimDevice",
                {
                    "name": device,
                    "description": f"{role} switch in {city}" if role != "edge" else "edge router",
                    "role": role,
                    "status": _STATUS.get(device, "active"),
                    "serial": f"SN{site_index:02d}{device_number:04d}",
                },
                site=("LocationSite", site),
                platform=("DcimPlatform", platform),
                rack=("DcimRack", f"{site}-r01"),
                tenant=("OrganizationTenant", tenant),
            )
            for interface, purpose, speed, mtu in _INTERFACES:
                add(
                    "InterfacePhysical",
                    {
                        "name": interface,
                        "description": purpose,
                        "speed": speed,
                        "enabled": (device, interface) not in _DISABLED_INTERFACES,
                        "mtu": mtu,
                    },
                    device=("DcimDevice", device),
                )
            add(
                "IpamIPAddress",
                {
                    "address": f"10.{site_index}.255.{role_index}/24",
                    "description": f"{device} management",
                },
                interface=("InterfacePhysical", f"{device}{_HFID_SEPARATOR}Management0"),
            )
        for a_role, a_if, b_role, b_if in (
            ("edge", "Ethernet1", "spine", "Ethernet1"),
            ("spine", "Ethernet2", "leaf", "Ethernet1"),
        ):
            a_end, b_end = f"{site}-{a_role}1", f"{site}-{b_role}1"
            add(
                "DcimCable",
                {
                    "label": f"{a_end}:{a_if} <> {b_end}:{b_if}",
                    "status": "connected",
                    "cable_type": "smf",
                },
                a_side=("InterfacePhysical", f"{a_end}{_HFID_SEPARATOR}{a_if}"),
                b_side=("InterfacePhysical", f"{b_end}{_HFID_SEPARATOR}{b_if}"),
            )
    return inventory


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
            peer = self.by_hfid(peer_kind, peer_hfid.split(_HFID_SEPARATOR))
            if peer is None:
                raise KeyError(f"{kind}: no {peer_kind} {peer_hfid!r}")
            node.peers[rel_name] = peer.id
        node.id = str(uuid.uuid5(_ID_NAMESPACE, f"{kind}:{_HFID_SEPARATOR.join(self.hfid(node))}"))
        self.nodes[node.id] = node
        return node

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

    def graphql_sdl(self) -> str:
        """A small GraphQL SDL for the kinds (what ``infrahub://graphql-schema`` serves)."""
        scalar_types = {"Number": "BigInt", "Boolean": "Boolean"}
        lines = [
            "type Query {",
            *(
                f"  {kind}(offset: Int, limit: Int, partial_match: Boolean, ids: [ID]):"
                f" Paginated{kind}!"
                for kind in sorted(self.schemas)
            ),
            "}",
            "",
        ]
        for kind in sorted(self.schemas):
            schema = self.schemas[kind]
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

    # --- naming ---------------------------------------------------------------------------

    def _path_value(self, node: Node, path: str) -> Any:
        """An attribute (``name``) or a ``one`` peer's attribute (``device__name``)."""
        rel_name, sep, attr_name = path.partition(_HFID_SEPARATOR)
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
        parts = key.removesuffix("__value").split(_HFID_SEPARATOR)
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

    # --- traversal ------------------------------------------------------------------------

    def resolve(self, ref: str) -> Node:
        """A node from a UUID or a kind-qualified HFID (``DcimDevice__atl1-edge1``)."""
        if ref in self.nodes:
            return self.nodes[ref]
        if _is_uuid(ref):
            raise InventoryError(
                f"Node {ref!r} not found.",
                "Infrahub rejected the traversal query (e.g. an unknown node id). "
                "Verify the node references with get_nodes or search_nodes.",
            )
        kind, *hfid = ref.split(_HFID_SEPARATOR)
        remediation = (
            "Use get_nodes or search_nodes to obtain a valid node id or kind-qualified HFID."
        )
        if not hfid:
            raise InventoryError(
                f"'{ref}' is neither a UUID nor a kind-qualified HFID (expected 'Kind__id').",
                remediation,
            )
        if kind not in self.schemas:
            raise InventoryError(
                f"Could not resolve '{ref}': Unable to find the schema '{kind}'", remediation
            )
        node = self.by_hfid(kind, hfid)
        if node is None:
            raise InventoryError(
                f"Could not resolve '{ref}': Unable to find the node {hfid} / {kind} in the"
                " database.",
                remediation,
            )
        return node

    def _edges(self, node: Node) -> Iterator[tuple[str, Node]]:
        """Undirected neighbours: ``(relationship identifier, peer)`` over every ``one`` link."""
        for rel in self.schemas[node.kind].relationships:
            if rel.cardinality == "one":
                for peer in self.related(node, rel):
                    yield rel.identifier or rel.name, peer
        for other in self.nodes.values():
            for rel in self.schemas[other.kind].relationships:
                if rel.cardinality == "one" and other.peers.get(rel.name) == node.id:
                    yield rel.identifier or rel.name, other

    def _bfs(
        self,
        source: Node,
        max_depth: int,
        kind_filter: Sequence[str] | None,
        relationship_filter: Sequence[str] | None,
        stop_at: Node | None = None,
    ) -> tuple[dict[str, int], dict[str, list[tuple[str, str]]]]:
        """Distances from ``source``, and each node's (previous, identifier) on shortest paths."""
        depth = {source.id: 0}
        parents: dict[str, list[tuple[str, str]]] = {source.id: []}
        queue = deque([source])
        while queue:
            node = queue.popleft()
            if depth[node.id] >= max_depth:
                continue
            # Only the endpoints may be of a kind outside kind_filter.
            if node is not source and kind_filter and node.kind not in kind_filter:
                continue
            if stop_at is not None and node.id == stop_at.id:
                continue
            for identifier, peer in self._edges(node):
                if relationship_filter and identifier not in relationship_filter:
                    continue
                if peer.id not in depth:
                    depth[peer.id] = depth[node.id] + 1
                    parents[peer.id] = []
                    queue.append(peer)
                if depth[peer.id] == depth[node.id] + 1:
                    parents[peer.id].append((node.id, identifier))
        return depth, parents

    def _paths_to(
        self, target: str, parents: Mapping[str, list[tuple[str, str]]], cap: int
    ) -> list[list[tuple[str, str | None]]]:
        """Up to ``cap`` shortest paths ending at ``target`` as ``[(node id, identifier)]``."""
        if not parents.get(target):
            return [[(target, None)]]
        paths: list[list[tuple[str, str | None]]] = []
        for previous, identifier in parents[target]:
            for head in self._paths_to(previous, parents, cap):
                paths.append([*head, (target, identifier)])
                if len(paths) >= cap:
                    return paths
        return paths

    def _shape_node(self, node: Node) -> dict[str, Any]:
        return {
            "id": node.id,
            "kind": node.kind,
            "display_label": self.label(node),
            "hfid": self.hfid(node),
        }

    def _shape_path(self, path: Sequence[tuple[str, str | None]]) -> dict[str, Any]:
        hops: list[dict[str, Any]] = []
        for node_id, identifier in path:
            node = self.nodes[node_id]
            hop: dict[str, Any] = {"node": {"kind": node.kind, "display_label": self.label(node)}}
            if identifier is not None:
                hop["relationship"] = identifier
            hops.append(hop)
        return {"depth": len(path) - 1, "hops": hops}

    def find_paths(
        self,
        source: str,
        destination: str,
        max_depth: int | None = None,
        kind_filter: Sequence[str] | None = None,
        relationship_filter: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Shortest paths between two nodes, over the relationships of the dataset."""
        start, end = self.resolve(source), self.resolve(destination)
        depth_limit = max_depth or DEFAULT_TRAVERSAL_DEPTH
        depth, parents = self._bfs(
            start, depth_limit, kind_filter, relationship_filter, stop_at=end
        )
        paths = self._paths_to(end.id, parents, cap=10) if end.id in depth and end != start else []
        return {
            "source": self._shape_node(start),
            "destination": self._shape_node(end),
            "count": len(paths),
            "paths": [self._shape_path(p) for p in paths],
        }

    def find_reachable(
        self,
        source: str,
        target_kinds: Sequence[str],
        max_depth: int | None = None,
        max_results: int = 20,
        shortest_paths_only: bool = True,
    ) -> dict[str, Any]:
        """Nodes of ``target_kinds`` reachable from ``source``, nearest first."""
        start = self.resolve(source)
        for kind in target_kinds:
            self.schema(kind, "Use get_schema() to list the kinds find_reachable can look for.")
        depth, parents = self._bfs(start, max_depth or DEFAULT_TRAVERSAL_DEPTH, None, None)
        found = sorted(
            (self.nodes[node_id] for node_id in depth if node_id != start.id),
            key=lambda n: (depth[n.id], n.kind, self.label(n)),
        )
        dependencies = []
        for node in found:
            if node.kind not in target_kinds:
                continue
            for path in self._paths_to(node.id, parents, cap=1 if shortest_paths_only else 5):
                dependencies.append(
                    {
                        "depth": depth[node.id],
                        "node": self._shape_node(node),
                        "path": self._shape_path(path),
                    }
                )
            if len(dependencies) >= max_results:
                break
        dependencies = dependencies[:max_results]
        return {
            "source": self._shape_node(start),
            "count": len(dependencies),
            "dependencies": dependencies,
        }

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

    # --- GraphQL --------------------------------------------------------------------------

    def graphql(self, query: str) -> tuple[str, dict[str, Any]]:
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
            if selection.name not in self.schemas:
                raise InventoryError(
                    f"Cannot query field '{selection.name}' on type 'Query'.",
                    "Call get_schema() to list valid kinds, or get_schema(kind='...') to see "
                    "attributes and filters.",
                )
            data[selection.alias] = self._resolve_paginated(selection.name, selection, None)
        return operation, data

    def _resolve_paginated(
        self, kind: str, selection: _Field, scope: list[Node] | None
    ) -> dict[str, Any]:
        arguments = dict(selection.arguments)
        offset = int(arguments.pop("offset", 0) or 0)
        limit = arguments.pop("limit", None)
        partial = bool(arguments.pop("partial_match", False))
        ids = arguments.pop("ids", None)
        nodes = self.select(kind, arguments, partial) if scope is None else scope
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
                    {node_selection.alias: self._resolve_node(n, node_selection)}
                    if node_selection
                    else {}
                    for n in nodes
                ]
            elif sub.name == "__typename":
                result[sub.alias] = f"Paginated{kind}"
            else:
                raise InventoryError(f"Cannot query field '{sub.name}' on type 'Paginated{kind}'.")
        return result

    def _resolve_node(self, node: Node, selection: _Field) -> dict[str, Any]:
        schema = self.schemas[node.kind]
        result: dict[str, Any] = {}
        for sub in selection.selections:
            attribute = schema.attribute(sub.name)
            rel = schema.relationship(sub.name)
            if sub.name == "id":
                result[sub.alias] = node.id
            elif sub.name == "display_label":
                result[sub.alias] = self.label(node)
            elif sub.name == "hfid":
                result[sub.alias] = self.hfid(node)
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
                peers = self.related(node, rel)
                inner = next((s for s in sub.selections if s.name == "node"), None)
                result[sub.alias] = (
                    {inner.alias: self._resolve_node(peers[0], inner) if peers else None}
                    if inner
                    else {}
                )
            elif rel is not None:
                result[sub.alias] = self._resolve_paginated(rel.peer, sub, self.related(node, rel))
            else:
                raise InventoryError(f"Cannot query field '{sub.name}' on type '{node.kind}'.")
        return result


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


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


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
