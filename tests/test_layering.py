"""The package's layering (``docs/architecture.md``), read from its source: no import cycle among its modules, the
two DAG builders share their wiring through one module, and the pure modules reach no I/O module.

Every import that runs counts, at module level or inside a function (a deferred import is a dependency all the
same, and the cycle these tests guard against once hid in one); imports under ``if TYPE_CHECKING:`` do not (they
never run: a pure step may name the type of the hook it is given).
"""

from __future__ import annotations

import ast
from collections.abc import Container
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "plugins" / "jikeyun_kingdee"

#: the pure layer of docs/architecture.md (``records`` is what ``scheme`` and ``transform`` build on)
PURE = {"scheme", "records", "fields", "source_paging", "transform", "upsert", "reconcile", "kingdee_forms", "values",
        "items"}
#: libraries that reach the network, a database or Airflow: no pure module imports them, even indirectly
IO_LIBRARIES = {"airflow", "requests", "sqlalchemy", "sqlite3", "smtplib", "socket"}


def package_modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_modules(tree: ast.AST, modules: Container[str]) -> set[str]:
    """The modules a module's running imports name: ``import a.b`` → ``a.b``; ``from a import b`` → ``a.b`` when
    that is one of ``modules``, else ``a``."""
    names: set[str] = set()
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module, f"relative import at line {node.lineno}"  # ruff bans them
            names.update(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                         for a in node.names)
        pending.extend(ast.iter_child_nodes(node))
    return names


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """``(module → the package modules it imports, module → the top-level names of the other modules it imports)``."""
    modules = package_modules()
    graph, outside = {}, {}
    for name, path in modules.items():
        imported = imported_modules(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), modules)
        graph[name] = {i for i in imported if i in modules} - {name}
        outside[name] = {i.split(".")[0] for i in imported} - {"jikeyun_kingdee"}
    return graph, outside


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    pending = [start]
    while pending:
        for name in graph[pending.pop()] - seen:
            seen.add(name)
            pending.append(name)
    return seen


def test_the_package_has_no_import_cycle() -> None:
    graph, _ = import_graph()
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle: {' → '.join(exc.args[1])}") from None


def test_the_builders_share_their_wiring_through_one_module() -> None:
    graph, _ = import_graph()
    dag_factory, reconcile_dag, wiring, pools = (f"jikeyun_kingdee.{m}" for m in
                                                 ("dag_factory", "reconcile_dag", "wiring", "pools"))
    assert {reconcile_dag, wiring} <= graph[dag_factory] and wiring in graph[reconcile_dag]
    builders = {dag_factory, reconcile_dag}
    for name in (wiring, pools):
        assert not reachable(graph, name) & builders, f"{name} imports a DAG builder"


def test_pure_modules_reach_no_io_module() -> None:
    graph, outside = import_graph()
    pure = {f"jikeyun_kingdee.{name}" for name in PURE}
    assert pure <= graph.keys(), f"no such module: {sorted(pure - graph.keys())}"
    for name in sorted(pure):
        reached = reachable(graph, name) | {name}
        assert reached <= pure, f"{name} reaches {sorted(reached - pure)}"
        io = {lib for module in reached for lib in outside[module]} & IO_LIBRARIES
        assert not io, f"{name} reaches {sorted(io)}"
