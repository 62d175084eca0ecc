"""The package's layers: no import cycle anywhere in ``src/``, and lower rooms never import
higher ones (tracking and messaging import neither each other nor training, studies, the
dashboard or the CLI)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "agentic_trading"

#: Packages that each of these may never import, at module level or inside a function.
FORBIDDEN = {
    "agentic_trading.messaging": ("tracking", "training", "studies", "dashboard", "cli", "models"),
    "agentic_trading.tracking": ("messaging", "training", "studies", "dashboard", "cli"),
    "agentic_trading.common": ("messaging", "tracking", "training", "studies", "dashboard", "cli"),
    "agentic_trading.alerts": ("messaging", "training", "studies", "dashboard", "cli", "models"),
    "agentic_trading.studies": ("pbt", "dashboard", "cli"),
    "agentic_trading.pbt": ("dashboard", "cli"),
}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project's modules that ``name`` imports, at module level or inside a function
    (``from a import b`` names ``a.b`` when that is a module); not those imported for the type
    checker only (``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes: list[ast.AST] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            nodes.append(child)
            visit(child)

    visit(tree)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {module for module in found if module in known and module != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_no_import_cycle_in_the_package() -> None:
    modules = _modules()
    known = set(modules)
    graph = {name: _imports(name, path, known) for name, path in modules.items()}
    # A package's __init__ re-exporting its submodules is how Python packages work; a cycle is
    # between modules that need each other (a lazy import inside a function counts: it only
    # hides the cycle from the interpreter).
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    assert _cycles(graph) == []


def test_a_cycle_is_found_when_there_is_one() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_lower_rooms_never_import_higher_ones() -> None:
    modules = _modules()
    known = set(modules)
    wrong = []
    for name, path in modules.items():
        for room, forbidden in FORBIDDEN.items():
            if name != room and not name.startswith(room + "."):
                continue
            for imported in _imports(name, path, known):
                if any(imported.startswith(f"agentic_trading.{f}") for f in forbidden):
                    wrong.append(f"{name} imports {imported}")
    assert wrong == []
