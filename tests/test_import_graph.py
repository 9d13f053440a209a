"""The package import graph has no cycle, and the app reaches the library by plain imports.

The graph: one node per module of rlvr_sim/, executor/, calibration/ and app_pages/ (plus
app.py); an edge A -> B for every *module-level* `import B` / `from B import x` in A (imports
inside functions are lazy and left out: they are how optional torch/vLLM stay optional).
`from pkg import name` counts as an edge to `pkg.name` when that is a module, else to `pkg`.
A package's `__init__` is the node `pkg`. Read with `ast`: nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rlvr_sim", "executor", "calibration", "app_pages")


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of PACKAGES and app.py."""
    out: dict[str, Path] = {"app": ROOT / "app.py"}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a `from ... import` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = current.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_type_checking(test: ast.expr) -> bool:
    """`if TYPE_CHECKING:` / `if typing.TYPE_CHECKING:`."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def module_level_imports(name: str, path: Path, modules: set[str], lazy: bool = False) -> set[str]:
    """Modules of the graph imported at module level by `name` (incl. under if/try at top);
    lazy=True adds the imports inside functions too."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()

    def visit(stmts: list[ast.stmt]) -> None:
        if lazy:
            stmts = [n for n in ast.walk(ast.Module(body=stmts, type_ignores=[]))
                     if isinstance(n, (ast.Import, ast.ImportFrom))]
        for st in stmts:
            if isinstance(st, ast.Import):
                for alias in st.names:
                    found.add(alias.name)
            elif isinstance(st, ast.ImportFrom):
                mod = _resolve(name, path.name == "__init__.py", st)
                for alias in st.names:     # a submodule if it is one, else a name of `mod`
                    sub = f"{mod}.{alias.name}"
                    found.add(sub if sub in modules else mod)
            elif isinstance(st, ast.If):
                if _is_type_checking(st.test):   # annotations only: never imported at run time
                    visit(st.orelse)
                    continue
                visit(st.body)
                visit(st.orelse)
            elif isinstance(st, ast.Try):
                visit(st.body)
                for h in st.handlers:
                    visit(h.body)
                visit(st.orelse)
                visit(st.finalbody)

    visit(tree.body)
    edges = set()
    for mod in found:
        # `import a.b.c` imports a, a.b and a.b.c; keep the deepest module of the graph
        parts = mod.split(".")
        for k in range(len(parts), 0, -1):
            cand = ".".join(parts[:k])
            if cand in modules:
                edges.add(cand)
                break
    edges.discard(name)
    # a module's own ancestor packages are initialised before it runs: not an edge
    return {e for e in edges if not name.startswith(e + ".")}


def import_graph(lazy: bool = False, prefix: str = "") -> dict[str, set[str]]:
    files = {k: v for k, v in module_files().items() if k.startswith(prefix)}
    names = set(files)
    return {name: module_level_imports(name, path, names, lazy) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (iterative DFS with colours)."""
    colour = dict.fromkeys(graph, 0)          # 0 new, 1 on the stack, 2 done
    for root in sorted(graph):
        if colour[root]:
            continue
        stack: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        path = [root]
        colour[root] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                colour[node] = 2
                stack.pop()
                path.pop()
                continue
            nxt = todo.pop()
            if colour.get(nxt, 2) == 1:
                return path[path.index(nxt):] + [nxt]
            if colour.get(nxt, 2) == 0:
                colour[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(graph[nxt])))
    return None


def test_the_cycle_finder_finds_a_cycle_and_the_graph_has_edges():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    graph = import_graph()
    assert "rlvr_sim.trace" in graph["executor.tracing"]          # the walker sees real edges
    assert "executor.config" in graph["executor.loop"]


def test_relative_imports_resolve():
    tree = ast.parse("from .b import x\nfrom .. import y\n")
    rel, up = tree.body
    assert _resolve("pkg.sub.a", False, rel) == "pkg.sub.b"
    assert _resolve("pkg.sub", True, rel) == "pkg.sub.b"
    assert _resolve("pkg.sub.a", False, up) == "pkg"


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "module-level import cycle: " + " -> ".join(cycle or [])


def test_the_executor_has_no_cycle_even_through_lazy_imports():
    """executor/ mirrors sim/: its modules form layers even counting the imports inside
    functions (orchestrator <-> orchestrator_trainer was such a circle)."""
    cycle = find_cycle(import_graph(lazy=True, prefix="executor"))
    assert cycle is None, "import cycle (counting function-level imports): " + " -> ".join(cycle or [])


def test_the_app_uses_plain_imports():
    offenders = []
    for path in [ROOT / "app.py", *sorted((ROOT / "app_pages").rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "importlib" or n.startswith("importlib.") for n in names) or (
                    isinstance(node, ast.Name) and node.id == "__import__"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"importlib in the app: {offenders}"
