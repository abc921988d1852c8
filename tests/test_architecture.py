"""The package map holds: every import points down the layers of ARCHITECTURE.md, never up.

Read from the source with ``ast`` (imports inside functions count too: a lazy import is still a
dependency), so a new arrow that breaks the layering fails here, naming the file and the import,
before it becomes a circle at run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# What each top-level package may import besides itself and third-party code.
# agentq (core) <- producer, worker, scheduler, api (roles) <- cli (the command);
# doubles and bench are tools that stand beside the product, and nothing in it imports them.
ALLOWED: dict[str, frozenset[str]] = {
    "agentq": frozenset(),
    "producer": frozenset({"agentq"}),
    "worker": frozenset({"agentq"}),
    "scheduler": frozenset({"agentq", "producer"}),
    "api": frozenset({"agentq", "producer"}),
    "cli": frozenset({"agentq", "producer", "worker", "scheduler", "api"}),
    "doubles": frozenset({"agentq", "producer", "cli"}),
    "bench": frozenset({"agentq", "producer", "worker", "doubles"}),
}
OURS = frozenset(ALLOWED) | {"tests"}
# Besides the core, a role uses only the producer's client (with its checks and batch-file reader).
PRODUCER_API = frozenset({"producer", "producer.client", "producer.checks", "producer.batch_files"})


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, absolute, with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def package_edges() -> list[tuple[str, str, str]]:
    """(package, imported module, where) for every import of one of our packages."""
    edges = []
    for package in ALLOWED:
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, module in imports_of(path):
                top = module.split(".")[0]
                if top in OURS and top != package:
                    edges.append((package, module, f"{path.relative_to(ROOT)}:{line}"))
    return edges


def test_every_package_is_listed() -> None:
    """A new top-level package must be placed on the map (and in ARCHITECTURE.md)."""
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == set(ALLOWED)


def test_imports_point_down_the_layers() -> None:
    upward = [
        f"{where}: {package} imports {module}"
        for package, module, where in package_edges()
        if module.split(".")[0] not in ALLOWED[package]
    ]
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


@pytest.mark.parametrize("role", ["worker", "scheduler", "api"])
def test_roles_use_only_the_producers_client(role: str) -> None:
    beyond = [
        f"{where}: {module}"
        for package, module, where in package_edges()
        if package == role and module.startswith("producer") and module not in PRODUCER_API
    ]
    assert not beyond, f"{role} reaches into the producer:\n" + "\n".join(beyond)


def test_the_map_is_documented() -> None:
    """ARCHITECTURE.md and the README's package table name every package."""
    architecture = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for package in ALLOWED:
        assert f"`{package}/`" in architecture, package
        assert f"`{package}/`" in readme, package
