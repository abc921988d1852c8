"""What an Infrahub inventory is made of: kinds (with attributes and relationships), nodes, and
the errors an agent can act on.

These are the shapes the dataset file (``doubles/data/inventory.yaml``) is read into and every
other part of :mod:`doubles.inventory` works over. Node ids are UUIDv5 of the kind and the
human-friendly id in a fixed namespace, so the same node has the same id in every process.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "HFID_SEPARATOR",
    "ID_NAMESPACE",
    "Attribute",
    "InventoryError",
    "KindSchema",
    "Node",
    "Relationship",
    "UnknownKindError",
    "derive_node_id",
]

# Fixed namespace for node ids: the same node has the same UUID in every process.
ID_NAMESPACE = uuid.UUID("5f0c4b8e-3d1a-4c2b-9a7e-1b2c3d4e5f60")
# Joins the parts of a human-friendly id (``atl1-edge1__Ethernet1``) and a kind to its HFID
# (``DcimDevice__atl1-edge1``), as the real server writes them.
HFID_SEPARATOR = "__"


def derive_node_id(kind: str, hfid: Iterable[str]) -> str:
    """The id of the node of ``kind`` with this human-friendly id (UUIDv5, stable)."""
    return str(uuid.uuid5(ID_NAMESPACE, f"{kind}:{HFID_SEPARATOR.join(hfid)}"))


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
