"""A small, fixed Infrahub inventory and the operations the MCP double answers from it.

The MCP double (``doubles.mcp_server``) has no Infrahub behind it; this package stands in for one.
The dataset is deterministic (ids are UUIDv5 of kind and human-friendly id), so a test, the demo
and a benchmark run all see the same nodes, labels and ids (a node a test renames keeps its id,
as in Infrahub). The operations return the shapes the
real infrahub-mcp 1.2.0 tools build from Infrahub's answers (schema catalog and detail, node labels
or attribute rows, paths between nodes), so an agent reading them sees what it would see in
production. Failures an agent can correct (an unknown kind, a bad filter key) raise
:class:`InventoryError` carrying the remediation hint the real server would give.

- ``model``: kinds, attributes, relationships, nodes, and the errors;
- ``dataset``: :func:`build_inventory`, which reads the dataset file
  ``doubles/data/inventory.yaml`` (the kinds and every node);
- ``store``: :class:`Inventory`, the nodes with the schema, naming, filtering, search, writes and
  the changes a test makes between two runs (``add_like``, ``rename``, ``remove``);
- ``traversal``: ``find_paths`` and ``find_reachable`` over the relationships;
- ``graphql``: the GraphQL SDL, a parser for the subset agents write, and its resolver.

Kinds: ``LocationSite``, ``OrganizationTenant``, ``DcimManufacturer``, ``DcimPlatform``,
``DcimRack``, ``DcimDevice``, ``DcimCable``, ``InterfacePhysical``, ``IpamPrefix`` and
``IpamIPAddress``. Other components (the offline demo model, the tests) rely on these names.
"""

from doubles.inventory.dataset import build_inventory
from doubles.inventory.graphql import GraphQLSyntaxError
from doubles.inventory.model import (
    Attribute,
    InventoryError,
    KindSchema,
    Node,
    Relationship,
    UnknownKindError,
)
from doubles.inventory.store import Inventory

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
