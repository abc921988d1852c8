"""The dataset the MCP double starts from: ``doubles/data/inventory.yaml``, read into an Inventory.

The inventory is data, so it is kept as data: every kind and node in one file a reader can scan
and change without reading code, with comments saying why a node is the way it is. This module
only reads that file and checks its shape; it adds the nodes in file order, and their ids are
derived (UUIDv5 of kind and human-friendly id), so the file cannot disagree with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from importlib import resources
from typing import Any

import yaml

from doubles.inventory.model import Attribute, KindSchema, Relationship
from doubles.inventory.store import Inventory

__all__ = ["DATASET", "build_inventory", "load_dataset"]

# Inside the ``doubles`` package (package data, so an installed copy has it too).
DATASET = ("data", "inventory.yaml")

# libyaml's loader when PyYAML was built with it (about six times faster on this file).
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_dataset() -> dict[str, Any]:
    """The dataset file, parsed (``kinds`` and ``nodes``), its shape checked."""
    text = resources.files("doubles").joinpath(*DATASET).read_text(encoding="utf-8")
    document = yaml.load(text, Loader=_LOADER)  # noqa: S506 (a safe loader)
    if not isinstance(document, dict) or not all(
        isinstance(document.get(key), list) for key in ("kinds", "nodes")
    ):
        raise ValueError(f"{'/'.join(DATASET)}: expected lists 'kinds' and 'nodes'")
    return document


def build_inventory() -> Inventory:
    """The dataset every double starts from (a fresh, independent copy each call)."""
    document = load_dataset()
    inventory = Inventory(_kind(entry) for entry in document["kinds"])
    for index, entry in enumerate(document["nodes"]):
        where = f"nodes[{index}]"
        kind = _mapping(entry, where).get("kind")
        schema = inventory.schemas.get(kind) if isinstance(kind, str) else None
        if schema is None:
            raise ValueError(f"{where}: unknown kind {kind!r}")
        _check_keys(entry, {"kind", "attributes", "peers"}, where)
        peers: dict[str, tuple[str, str]] = {}
        for rel_name, hfid in _mapping(entry.get("peers", {}), f"{where}.peers").items():
            rel = schema.relationship(rel_name)
            if rel is None or rel.cardinality != "one" or not isinstance(hfid, str):
                raise ValueError(f"{where}.peers: {rel_name!r} is not a one relationship of {kind}")
            peers[rel_name] = (rel.peer, hfid)
        inventory.add(
            schema.kind, _mapping(entry.get("attributes"), f"{where}.attributes"), **peers
        )
    return inventory


def _kind(entry: Any) -> KindSchema:
    where = f"kind {_mapping(entry, 'kinds[]').get('kind')!r}"
    _check_keys(entry, _names(KindSchema), where)
    attributes = tuple(
        Attribute(**_check_keys(a, _names(Attribute), f"{where}.attributes"))
        for a in entry["attributes"]
    )
    relationships = tuple(
        Relationship(**_check_keys(r, _names(Relationship), f"{where}.relationships"))
        for r in entry["relationships"]
    )
    for rel in relationships:
        if rel.cardinality not in ("one", "many"):
            raise ValueError(f"{where}: relationship {rel.name!r} is neither one nor many")
    return KindSchema(
        kind=entry["kind"],
        label=entry["label"],
        namespace=entry["namespace"],
        attributes=attributes,
        relationships=relationships,
        human_friendly_id=tuple(entry["human_friendly_id"]),
        display_label=entry["display_label"],
    )


def _names(cls: type[Attribute | Relationship | KindSchema]) -> set[str]:
    return {f.name for f in fields(cls)}


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a mapping")
    return value


def _check_keys(entry: Any, allowed: set[str], where: str) -> Mapping[str, Any]:
    """``entry`` as a mapping, if it has no key but ``allowed`` ones."""
    unknown = set(_mapping(entry, where)) - allowed
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}")
    return _mapping(entry, where)
