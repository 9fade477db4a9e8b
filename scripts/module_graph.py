"""The picture of the package's modules and their imports, as a Mermaid flowchart.

    python3 scripts/module_graph.py        # prints the block docs/architecture.md holds

Reads the source with ``ast`` (nothing is imported): every ``import`` of
one part of ``platforma_c2d`` by another, also inside functions, except
those only for type checkers (``if TYPE_CHECKING:``). A part is a
subpackage (``calls``, ``store``...) or a top-level module (``rules``,
``runtime``...); the ``cli*`` modules are one part, and ``calls/model.py``,
the call's data that the store and the CLID code read too, is shown apart
from the rest of ``calls``. tests/unit/test_architecture_picture.py checks
that the picture in docs/architecture.md is this one.
"""

from __future__ import annotations

import ast
import pathlib
import sys

PACKAGE = "platforma_c2d"
ROOT = pathlib.Path(__file__).resolve().parent.parent


def part_of(module: str) -> str | None:
    """The part of the package a dotted module name belongs to (None: outside the package,
    or the package itself)."""
    names = module.split(".")
    if names[0] != PACKAGE or len(names) == 1:
        return None
    if names[1:3] == ["calls", "model"]:
        return "calls.model"
    if names[1] == "cli" or names[1].startswith("cli_"):
        return "cli"
    return names[1]


def _module_name(path: pathlib.Path, root: pathlib.Path) -> str:
    dotted = ".".join(path.relative_to(root).with_suffix("").parts)
    return dotted.removesuffix(".__init__")


def _imported(tree: ast.AST, modules: set[str]) -> list[str]:
    """Dotted names of the modules ``tree`` imports, leaving out ``if TYPE_CHECKING:`` blocks.

    ``from a.b import c`` imports module ``a.b.c`` when there is one (``modules``),
    else a name of ``a.b``."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    found: list[str] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules
                      else node.module for alias in node.names]
    return found


def edges(root: pathlib.Path = ROOT) -> set[tuple[str, str]]:
    """``(importer, imported)`` pairs of parts of the package under ``root``."""
    paths = list((root / PACKAGE).rglob("*.py"))
    modules = {_module_name(p, root) for p in paths}
    out: set[tuple[str, str]] = set()
    for path in paths:
        source = part_of(_module_name(path, root))
        for name in _imported(ast.parse(path.read_text(encoding="utf-8")), modules):
            target = part_of(name)
            if source and target and source != target:
                out.add((source, target))
    return out


def mermaid(root: pathlib.Path = ROOT) -> str:
    """The fenced Mermaid block of the picture, one edge a line, sorted."""
    lines = ["```mermaid", "flowchart LR"]
    lines += [f"  {_node(a)} --> {_node(b)}" for a, b in sorted(edges(root))]
    lines.append("```")
    return "\n".join(lines)


def _node(part: str) -> str:
    return part.replace(".", "_") + (f'["{part}"]' if "." in part else "")


if __name__ == "__main__":
    sys.stdout.write(mermaid() + "\n")
