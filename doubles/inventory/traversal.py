"""Walking the inventory's relationships: what ``find_paths`` and ``find_reachable`` answer.

Nodes are named by UUID or by kind-qualified human-friendly id (``DcimDevice__atl1-edge1``), as
agents name them to the real server. Every ``one`` relationship is an undirected edge labelled with
its identifier; a breadth-first search from the source gives the shortest paths. A node's edges
are met in a fixed order (its own links in schema order, then the nodes linking to it in dataset
order), so the same question gets the same paths, in the same order, on every run.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from doubles.inventory.model import HFID_SEPARATOR, InventoryError, Node
from doubles.inventory.store import Inventory

__all__ = ["DEFAULT_TRAVERSAL_DEPTH", "find_paths", "find_reachable", "resolve"]

DEFAULT_TRAVERSAL_DEPTH = 10


def resolve(inventory: Inventory, ref: str) -> Node:
    """A node from a UUID or a kind-qualified HFID (``DcimDevice__atl1-edge1``)."""
    if ref in inventory.nodes:
        return inventory.nodes[ref]
    if _is_uuid(ref):
        raise InventoryError(
            f"Node {ref!r} not found.",
            "Infrahub rejected the traversal query (e.g. an unknown node id). "
            "Verify the node references with get_nodes or search_nodes.",
        )
    kind, *hfid = ref.split(HFID_SEPARATOR)
    remediation = "Use get_nodes or search_nodes to obtain a valid node id or kind-qualified HFID."
    if not hfid:
        raise InventoryError(
            f"'{ref}' is neither a UUID nor a kind-qualified HFID (expected 'Kind__id').",
            remediation,
        )
    if kind not in inventory.schemas:
        raise InventoryError(
            f"Could not resolve '{ref}': Unable to find the schema '{kind}'", remediation
        )
    node = inventory.by_hfid(kind, hfid)
    if node is None:
        raise InventoryError(
            f"Could not resolve '{ref}': Unable to find the node {hfid} / {kind} in the database.",
            remediation,
        )
    return node


def _edges(inventory: Inventory, node: Node) -> Iterator[tuple[str, Node]]:
    """Undirected neighbours: ``(relationship identifier, peer)`` over every ``one`` link."""
    for rel in inventory.schemas[node.kind].relationships:
        if rel.cardinality == "one":
            for peer in inventory.related(node, rel):
                yield rel.identifier or rel.name, peer
    for other in inventory.nodes.values():
        for rel in inventory.schemas[other.kind].relationships:
            if rel.cardinality == "one" and other.peers.get(rel.name) == node.id:
                yield rel.identifier or rel.name, other


def _bfs(
    inventory: Inventory,
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
        for identifier, peer in _edges(inventory, node):
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
    target: str, parents: Mapping[str, list[tuple[str, str]]], cap: int
) -> list[list[tuple[str, str | None]]]:
    """Up to ``cap`` shortest paths ending at ``target`` as ``[(node id, identifier)]``."""
    if not parents.get(target):
        return [[(target, None)]]
    paths: list[list[tuple[str, str | None]]] = []
    for previous, identifier in parents[target]:
        for head in _paths_to(previous, parents, cap):
            paths.append([*head, (target, identifier)])
            if len(paths) >= cap:
                return paths
    return paths


def _shape_node(inventory: Inventory, node: Node) -> dict[str, Any]:
    return {
        "id": node.id,
        "kind": node.kind,
        "display_label": inventory.label(node),
        "hfid": inventory.hfid(node),
    }


def _shape_path(inventory: Inventory, path: Sequence[tuple[str, str | None]]) -> dict[str, Any]:
    hops: list[dict[str, Any]] = []
    for node_id, identifier in path:
        node = inventory.nodes[node_id]
        hop: dict[str, Any] = {"node": {"kind": node.kind, "display_label": inventory.label(node)}}
        if identifier is not None:
            hop["relationship"] = identifier
        hops.append(hop)
    return {"depth": len(path) - 1, "hops": hops}


def find_paths(
    inventory: Inventory,
    source: str,
    destination: str,
    max_depth: int | None = None,
    kind_filter: Sequence[str] | None = None,
    relationship_filter: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Shortest paths between two nodes, over the relationships of the dataset."""
    start, end = resolve(inventory, source), resolve(inventory, destination)
    depth_limit = max_depth or DEFAULT_TRAVERSAL_DEPTH
    depth, parents = _bfs(
        inventory, start, depth_limit, kind_filter, relationship_filter, stop_at=end
    )
    paths = _paths_to(end.id, parents, cap=10) if end.id in depth and end != start else []
    return {
        "source": _shape_node(inventory, start),
        "destination": _shape_node(inventory, end),
        "count": len(paths),
        "paths": [_shape_path(inventory, p) for p in paths],
    }


def find_reachable(
    inventory: Inventory,
    source: str,
    target_kinds: Sequence[str],
    max_depth: int | None = None,
    max_results: int = 20,
    shortest_paths_only: bool = True,
) -> dict[str, Any]:
    """Nodes of ``target_kinds`` reachable from ``source``, nearest first."""
    start = resolve(inventory, source)
    for kind in target_kinds:
        inventory.schema(kind, "Use get_schema() to list the kinds find_reachable can look for.")
    depth, parents = _bfs(inventory, start, max_depth or DEFAULT_TRAVERSAL_DEPTH, None, None)
    found = sorted(
        (inventory.nodes[node_id] for node_id in depth if node_id != start.id),
        key=lambda n: (depth[n.id], n.kind, inventory.label(n)),
    )
    dependencies = []
    for node in found:
        if node.kind not in target_kinds:
            continue
        for path in _paths_to(node.id, parents, cap=1 if shortest_paths_only else 5):
            dependencies.append(
                {
                    "depth": depth[node.id],
                    "node": _shape_node(inventory, node),
                    "path": _shape_path(inventory, path),
                }
            )
        if len(dependencies) >= max_results:
            break
    dependencies = dependencies[:max_results]
    return {
        "source": _shape_node(inventory, start),
        "count": len(dependencies),
        "dependencies": dependencies,
    }


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False
