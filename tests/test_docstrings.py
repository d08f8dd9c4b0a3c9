"""At least 90% of the package's public definitions (classes, functions, methods) say what
they are for in a docstring."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "sweeper"


def _public(tree: ast.AST) -> list[ast.AST]:
    out: list[ast.AST] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name.startswith("_"):
                continue
            out.append(node)
            if isinstance(node, ast.ClassDef):
                out += _public(node)
    return out


def test_public_definitions_have_docstrings() -> None:
    found = [
        (path, node)
        for path in PACKAGE.rglob("*.py")
        for node in _public(ast.parse(path.read_text()))
    ]
    missing = [
        f"{p.relative_to(PACKAGE)}:{n.lineno} {n.name}"
        for p, n in found
        if not ast.get_docstring(n)
    ]  # type: ignore[attr-defined]
    assert len(missing) <= 0.1 * len(found), "\n".join(missing)


def test_the_lazy_top_level_and_its_type_checking_twin_name_the_same_things() -> None:
    import sweeper

    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If))  # if TYPE_CHECKING:
    typed = {
        (node.module, alias.name)
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert typed == {(module, attr) for module, attr in sweeper._LAZY.values()}
    assert sweeper.__all__ == sorted(sweeper._LAZY)
    for name in sweeper._LAZY:
        assert getattr(sweeper, name) is not None
