"""Which files are linted, and their YAML read strictly (duplicate keys are errors) into documents."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from cxrcore.ops.lint.common import Finding

__all__ = [
    "DEFAULT_DIRECTORIES",
    "RESOLUTION_DIRECTORIES",
    "Document",
    "StrictLoader",
    "collect_lint_files",
    "display",
    "is_dockerfile",
    "is_yaml",
    "load_yaml_documents",
]

#: Folders of the repository linted when no path is given.
DEFAULT_DIRECTORIES: tuple[str, ...] = ("argo", "k8s", "docker")
#: Folders always read (not linted) to resolve references between manifests.
RESOLUTION_DIRECTORIES: tuple[str, ...] = ("argo", "k8s")

_YAML_SUFFIXES = (".yaml", ".yml")


def is_dockerfile(path: Path) -> bool:
    """Whether ``path`` names a Dockerfile (``Dockerfile``, ``Dockerfile.x`` or ``x.Dockerfile``)."""
    name = path.name
    return name == "Dockerfile" or name.startswith("Dockerfile.") or name.endswith(".Dockerfile")


def is_yaml(path: Path) -> bool:
    """Whether ``path`` names a YAML file."""
    return path.suffix.lower() in _YAML_SUFFIXES


def display(path: Path, root: Path) -> str:
    """``path`` as findings name it: relative to ``root`` when it lies under it."""
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def collect_lint_files(paths: Iterable[Path] | None = None, *, root: Path) -> tuple[list[Path], list[Finding]]:
    """The YAML files and Dockerfiles ``paths`` name, and findings for paths that cannot be linted.

    Args:
        paths: Files or folders (folders are searched recursively); ``None``: ``argo/``, ``k8s/`` and ``docker/``
            under ``root`` (those that exist).
        root: The repository root; relative ``paths`` are taken relative to the current directory.

    Returns:
        The lintable files (sorted, resolved, each once) and one finding per missing or unsupported path.
    """
    root = Path(root).resolve()
    if paths is None:
        targets = [root / name for name in DEFAULT_DIRECTORIES if (root / name).is_dir()]
    else:
        targets = [Path(path) for path in paths]
    files: dict[Path, None] = {}
    findings: list[Finding] = []
    for target in targets:
        if target.is_dir():
            for candidate in sorted(target.rglob("*")):
                if candidate.is_file() and (is_yaml(candidate) or is_dockerfile(candidate)):
                    files.setdefault(candidate.resolve(), None)
        elif target.is_file():
            if is_yaml(target) or is_dockerfile(target):
                files.setdefault(target.resolve(), None)
            else:
                findings.append(
                    Finding(
                        display(target, root), "-", "unsupported file type: expected *.yaml, *.yml or a Dockerfile"
                    )
                )
        else:
            findings.append(Finding(display(target, root), "-", "no such file or directory"))
    return sorted(files), findings


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (kubectl and Argo do)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Constructs a mapping, raising ``ConstructorError`` on a key that appears twice."""
        seen: set[Any] = set()
        for key_node, _value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml_documents(path: Path) -> tuple[list[Any], str | None, str | None]:
    """Reads the YAML documents of a file strictly.

    Args:
        path: The YAML file.

    Returns:
        ``(documents, None, None)`` with the non-empty documents, or ``([], where, problem)`` when the file cannot
        be read or does not parse (``where`` is ``line N`` or ``-``).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return [], "-", f"cannot read: {error}"
    try:
        documents = [document for document in yaml.load_all(text, Loader=StrictLoader) if document is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "-"
        problem = getattr(error, "problem", None) or str(error)
        context = getattr(error, "context", None)
        message = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
        return [], where, message
    return documents, None, None


@dataclasses.dataclass
class Document:
    """One YAML document: where it is and whether its findings are reported.

    Attributes:
        file: The file as findings name it.
        path: The resolved file.
        prefix: Prepended to field paths: ``doc[i]`` in files of several documents, else ``""``.
        body: The parsed document.
        linted: Whether findings are reported (documents read only to resolve references are not).
    """

    file: str
    path: Path
    prefix: str
    body: Any
    linted: bool

    @property
    def kind(self) -> str | None:
        """The document's ``kind``, when it is a string."""
        kind = self.body.get("kind") if isinstance(self.body, dict) else None
        return kind if isinstance(kind, str) else None

    @property
    def api_version(self) -> str | None:
        """The document's ``apiVersion``, when it is a string."""
        api_version = self.body.get("apiVersion") if isinstance(self.body, dict) else None
        return api_version if isinstance(api_version, str) else None

    @property
    def name(self) -> str | None:
        """The document's ``metadata.name``, when it is a string."""
        metadata = self.body.get("metadata") if isinstance(self.body, dict) else None
        name = metadata.get("name") if isinstance(metadata, dict) else None
        return name if isinstance(name, str) else None
