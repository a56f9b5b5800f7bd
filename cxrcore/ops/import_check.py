"""The import check of an image: does the code its job runs import in the image's environment?

See docs/architecture.md#deployment. :class:`cxrcore.ops.images.ImageEnvironments` builds the environment; this
module decides what to import and reads the answer:

1. :func:`entry_module`: the module of the image's ``ENTRYPOINT`` (``python -m module``, or a console script of
   ``pyproject.toml`` ``[project.scripts]``);
2. :func:`closure_modules`: that module, the Settings and run modules the table of jobs names for it
   (:data:`cxrcore.jobs_table.JOBS`: an entrypoint is one call into the table, which imports them by dotted path
   only when the job runs), and every ``cxrcore``/``jobs`` module any of those imports, also inside functions
   (``if TYPE_CHECKING:`` blocks excepted); importing each loads its own module-level imports transitively;
3. :data:`IMPORT_PROBE` imports them in the environment's interpreter and prints a JSON report, which
   :func:`report_problems` turns into one line per problem, naming the image, the missing module and the project
   module that imports it.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from cxrcore.jobs_table import find_job

__all__ = ["IMPORT_PROBE", "PROJECT_PACKAGES", "closure_modules", "entry_module", "report_problems"]

#: The project's top-level packages: the modules the check follows and reports as "project modules".
PROJECT_PACKAGES = ("cxrcore", "jobs")

#: Run as ``python -I -c IMPORT_PROBE <modules json> <packages json>`` in the image's environment.
IMPORT_PROBE = r"""
import importlib, json, os, sys, traceback
modules = json.loads(sys.argv[1])
packages = json.loads(sys.argv[2])
results = []

def project_module(filename):
    path = os.path.realpath(filename)
    for entry in sys.path:
        base = os.path.realpath(entry or os.getcwd()) + os.sep
        if path.startswith(base):
            parts = path[len(base):].split(os.sep)
            if parts[0] in packages and parts[-1].endswith(".py"):
                parts[-1] = parts[-1][:-3]
                if parts[-1] == "__init__":
                    parts.pop()
                return ".".join(parts)
    return None

for module in modules:
    try:
        importlib.import_module(module)
    except BaseException as error:
        culprit = module
        for frame in traceback.extract_tb(error.__traceback__):
            name = project_module(frame.filename)
            if name:
                culprit = name
        results.append({
            "module": module,
            "missing": getattr(error, "name", None) if isinstance(error, ModuleNotFoundError) else None,
            "error": f"{type(error).__name__}: {error}",
            "imported_by": culprit,
        })
origin = {package: getattr(sys.modules.get(package), "__file__", None) for package in packages}
print(json.dumps({"results": results, "origin": origin, "prefix": sys.prefix}))
"""


def module_file(root: Path, module: str) -> Path | None:
    """The source file of a project module under ``root`` (a package's ``__init__.py``), or None."""
    base = root.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def entry_module(root: Path, entrypoint: tuple[str, ...], *, image: str) -> tuple[str, str | None]:
    """The module an ``ENTRYPOINT`` runs, and its console script (``None`` for ``python -m module``).

    Raises:
        ValueError: ``pyproject.toml`` cannot be read, or the entrypoint is no console script of it; the message
            names the image.
    """
    if len(entrypoint) >= 3 and PurePosixPath(entrypoint[0]).name.startswith("python") and entrypoint[1] == "-m":
        return entrypoint[2], None
    try:
        pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"image {image}: cannot read pyproject.toml: {error}") from error
    scripts = pyproject.get("project", {}).get("scripts", {})
    script = PurePosixPath(entrypoint[0]).name
    if script not in scripts:
        raise ValueError(
            f"image {image}: ENTRYPOINT {entrypoint[0]!r} is not a console script of pyproject.toml "
            f"[project.scripts] ({', '.join(sorted(scripts))})"
        )
    return scripts[script].split(":", 1)[0].strip(), script


def closure_modules(root: Path, module: str, script: str | None, *, image: str) -> list[str]:
    """The modules to import: the entry module, its job's Settings and run modules, and their project imports.

    Raises:
        ValueError: The entry module has no source under ``root``.
    """
    entry_file = module_file(root, module)
    if entry_file is None:
        raise ValueError(f"image {image}: entrypoint module {module} has no source under {root}")
    job = find_job(script=script, module=module)
    roots = [module, *(name for name in (job.modules if job else ()) if module_file(root, name) is not None)]
    modules: list[str] = []
    for name in roots:
        if name not in modules:
            modules.append(name)
        source = module_file(root, name)
        for imported in sorted(_project_imports(source, name, lambda other: module_file(root, other))):
            if imported not in modules:
                modules.append(imported)
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _project_imports(path: Path, module: str, find: Callable[[str], Path | None]) -> set[str]:
    """The project modules ``path`` (module ``module``) imports anywhere, ``if TYPE_CHECKING:`` blocks excepted."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def add(name: str) -> None:
        if name.split(".")[0] in PROJECT_PACKAGES and find(name) is not None:
            found.add(name)

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for statement in child.orelse:
                    visit_statement(statement)
                continue
            visit_statement(child)

    def visit_statement(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            add(base)
            for alias in node.names:
                add(f"{base}.{alias.name}")
        visit(node)

    visit(tree)
    return found


def report_problems(image: str, report: dict[str, Any], env_dir: Path, dockerfile: str) -> list[str]:
    """One line per problem of an :data:`IMPORT_PROBE` report (empty when everything imported from ``env_dir``).

    Args:
        image: The image name.
        report: The probe's JSON answer.
        env_dir: The environment the project must have been imported from.
        dockerfile: The image's Dockerfile, as shown in messages.
    """
    problems: list[str] = []
    for package, origin in report["origin"].items():
        if origin and not Path(origin).resolve().is_relative_to(env_dir.resolve()):
            problems.append(f"image {image}: {package} was imported from {origin}, not from {env_dir}")
    seen: set[tuple[str | None, str]] = set()
    for item in report["results"]:
        missing, culprit = item["missing"], item["imported_by"]
        if (missing or item["error"], culprit) in seen:
            continue
        seen.add((missing or item["error"], culprit))
        if missing and missing.split(".")[0] in PROJECT_PACKAGES:
            problems.append(
                f"image {image}: project module {missing!r} missing (imported by {culprit}); is it COPY'd "
                f"by {dockerfile} and packaged?"
            )
        elif missing:
            problems.append(
                f"image {image}: module {missing!r} missing (imported by {culprit}); add it to pyproject.toml "
                "and run make lock"
            )
        else:
            problems.append(f"image {image}: importing {item['module']} failed in {culprit}: {item['error']}")
    return problems
