"""docs/architecture.md's picture of the modules and their imports is the code's
(issue: a picture that matches the code): the Mermaid block there has exactly
the edges scripts/module_graph.py reads from the source."""

from __future__ import annotations

import ast
import importlib.util
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _graph():
    spec = importlib.util.spec_from_file_location("module_graph", ROOT / "scripts" / "module_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pictured() -> set[tuple[str, str]]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Modules and their imports", 1)[1]
    block = re.search(r"```mermaid\n(.*?)```", section, re.S).group(1)
    node = r'(\w+)(?:\["([\w.]+)"\])?'
    edges = set()
    for line in block.splitlines()[1:]:
        found = re.fullmatch(rf"\s*{node} --> {node}\s*", line)
        assert found, f"not an edge of the picture: {line!r}"
        a, a_label, b, b_label = found.groups()
        edges.add((a_label or a, b_label or b))
    return edges


def test_the_picture_of_the_modules_matches_their_imports():
    graph = _graph()
    code = graph.edges()
    pictured = _pictured()
    assert pictured == code, (
        f"docs/architecture.md draws {sorted(pictured - code)} that the code does not import, and "
        f"misses {sorted(code - pictured)}; paste the output of python3 scripts/module_graph.py")


def test_the_picture_is_read_from_imports_not_type_checking_only(tmp_path):
    """An import under ``if TYPE_CHECKING:`` draws no arrow; one inside a function does."""
    package = tmp_path / "platforma_c2d"
    (package / "calls").mkdir(parents=True)
    (package / "store").mkdir()
    for init in (package / "__init__.py", package / "calls" / "__init__.py", package / "store" / "__init__.py"):
        init.write_text("")
    (package / "calls" / "model.py").write_text("")
    (package / "calls" / "engine.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from platforma_c2d.store import journal\n")
    (package / "store" / "journal.py").write_text(
        "def f():\n    from platforma_c2d.calls import model\n")
    assert _graph().edges(tmp_path) == {("store", "calls.model")}


def _imported_roots(folder: pathlib.Path) -> dict[str, set[str]]:
    """Top-level names each module under ``folder`` imports (inside functions too)."""
    out: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        roots = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                roots.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots.add(node.module.split(".")[0])
        out[str(path.relative_to(ROOT))] = roots
    return out


def test_the_package_imports_neither_the_bench_nor_the_tests():
    """What architecture.md says (ADR 0017): the product never imports ``testbed``,
    ``bench`` or ``tests``, and ``testbed`` runs the service as a process without
    importing the package."""
    wrong = {path: roots & {"testbed", "bench", "tests"}
             for path, roots in _imported_roots(ROOT / "platforma_c2d").items()}
    assert {p: r for p, r in wrong.items() if r} == {}
    into_package = [path for path, roots in _imported_roots(ROOT / "testbed").items() if "platforma_c2d" in roots]
    assert into_package == []
