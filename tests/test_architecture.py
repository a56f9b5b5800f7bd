"""Architecture rules of ``cxrcore``: no import cycle, and the light modules stay free of TensorFlow.

The import graph is built from the source with :mod:`ast` (nothing is imported): one edge per ``import`` /
``from ... import`` of a ``cxrcore`` module that runs when the module is imported: at module level, under a
module-level ``if``, ``try``, ``with`` or loop, or in a class body (but not under ``if TYPE_CHECKING:``, which
never runs). Imports inside functions are lazy and are edges only of the ``lazy=True`` graph. Importing
``a.b.c`` also runs the ``__init__`` of ``a.b`` and ``a``: those packages are edges too, unless they enclose the
importing module (their ``__init__`` is already running then) and the import is not ``from package import
name`` of a name that is not a submodule (which needs the package's ``__init__`` to have defined it).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "cxrcore"

#: Modules that must import without TensorFlow (the CPU images ``prepare`` and ``report`` carry none).
TENSORFLOW_FREE_MODULES: tuple[str, ...] = (
    "cxrcore.vocab",
    "cxrcore.config",
    "cxrcore.metrics",
    "cxrcore.report",
    "cxrcore.report.collect",
    "cxrcore.report.figures",
    "cxrcore.report.job",
    "cxrcore.report.paper",
    "cxrcore.report.render",
    "cxrcore.report.tables",
)


def module_files(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of ``package`` under ``root``: ``{"cxrcore.data.ingest": path, "cxrcore.data": __init__}``."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else None
    return name == "TYPE_CHECKING"


def _imports(body: list[ast.stmt], *, lazy: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements of ``body`` that run when the module is imported (``lazy``: also in functions)."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _imports(node.body, lazy=lazy)
            yield from _imports(node.orelse, lazy=lazy)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(handler.body for handler in node.handlers)):
                yield from _imports(block, lazy=lazy)
        elif isinstance(node, (ast.With, ast.For, ast.While, ast.ClassDef)) or (
            lazy and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        ):
            # A class body runs at import time; a function body only when called.
            yield from _imports(node.body, lazy=lazy)


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:index]) for index in range(1, len(parts))]


def _imported_base(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


def _dependencies(name: str, *, enclosing: set[str], modules: dict[str, Path], through_init: bool) -> set[str]:
    """What importing ``name`` runs: the module and the ``__init__`` of its packages, unless they enclose the
    importer (``through_init``: also when ``name`` itself does, for ``from package import name``)."""
    found = {name} if name in modules and (through_init or name not in enclosing) else set()
    return found | {package for package in _ancestors(name) if package in modules and package not in enclosing}


def import_graph(root: Path = ROOT, package: str = PACKAGE, *, lazy: bool = False) -> dict[str, set[str]]:
    """``{module: {modules it imports}}`` for every module of ``package``.

    Args:
        root: Folder holding the package.
        package: Top-level package name.
        lazy: Also count imports inside functions and classes (default: module level only).
    """
    modules = module_files(root, package)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        enclosing = set(_ancestors(module))
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), filename=str(path)).body, lazy=lazy):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    targets |= _dependencies(alias.name, enclosing=enclosing, modules=modules, through_init=False)
                continue
            base = _imported_base(node, module, path.name == "__init__.py")
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:  # a submodule: needs only the submodule
                    name, through_init = f"{base}.{alias.name}", False
                else:  # a name: needs base's __init__, even from inside it
                    name, through_init = base, True
                targets |= _dependencies(name, enclosing=enclosing, modules=modules, through_init=through_init)
        targets.discard(module)
        graph[module] = targets
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of ``graph`` with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def test_import_graph_sees_module_level_imports_only():
    graph = import_graph()
    assert "cxrcore.config" in graph["cxrcore.registry"]
    assert "cxrcore.config.training" in graph["cxrcore.config"]
    assert "cxrcore.vocab" in graph["cxrcore.config.base"]
    # Lazy imports inside functions are not edges (config opens the store lazily).
    assert "cxrcore.storage" not in graph["cxrcore.config.base"]


def test_find_cycles_reports_a_cycle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert cycles == [], f"Module-level import cycles in {PACKAGE}: {cycles}"


def test_no_import_cycles_through_lazy_imports():
    # A lazy import inside a function hides a cycle from the import system, not from the design
    # (config used to import registry lazily while registry imports config).
    cycles = find_cycles(import_graph(lazy=True))
    assert cycles == [], f"Import cycles in {PACKAGE} (counting imports inside functions): {cycles}"


def test_config_depends_only_on_the_vocabulary():
    graph = import_graph()
    config_modules = {name for name in graph if name == "cxrcore.config" or name.startswith("cxrcore.config.")}
    for module in config_modules:
        assert graph[module] <= {"cxrcore", "cxrcore.vocab", "cxrcore.settings_support"} | config_modules, module
    assert graph["cxrcore.settings_support"] <= {"cxrcore", "cxrcore.vocab"}
    assert graph["cxrcore.vocab"] <= {"cxrcore"}


@pytest.mark.parametrize("module", TENSORFLOW_FREE_MODULES)
def test_light_modules_import_without_tensorflow(module):
    code = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        "heavy = sorted(name for name in ('tensorflow', 'keras') if name in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "", f"{module} imports {completed.stdout.strip()}"


def test_vocab_imports_only_the_standard_library():
    tree = ast.parse((ROOT / PACKAGE / "vocab.py").read_text())
    imported = {
        (alias.name if isinstance(node, ast.Import) else node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported
