"""A small YAML writer for manifests people read: block or flow style per node, comments, anchors and folded
scalars (PyYAML's dumper writes none of the last three).

Data is plain ``dict``/``list``/scalars, with four wrappers that say how to write a node: :class:`Flow`,
:class:`Anchor`, :class:`Comment` and :class:`Folded`. :func:`render_yaml` checks that the text it writes reads
back (``yaml.safe_load``) as exactly the data it was given, so a quoting mistake cannot reach a manifest.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from typing import Any

import yaml

__all__ = ["Anchor", "Comment", "Flow", "Folded", "plain", "render_yaml"]

_NUMBER_LIKE = re.compile(r"[-+.]?\d[\d._]*(?:[eE][-+]?\d+)?")
_INDICATORS = "!&*|>'\"%@`#,[]{}?:"
_FLOW_INDICATORS = ",[]{}"


@dataclasses.dataclass(frozen=True)
class Flow:
    """A mapping or list written on one line: ``{a: 1, b: [x, y]}``."""

    value: Any


@dataclasses.dataclass(frozen=True)
class Anchor:
    """A node written in full where it first appears (``&name``) and as ``*name`` everywhere after."""

    name: str
    value: Any


@dataclasses.dataclass(frozen=True)
class Comment:
    """Comment lines written above the mapping entry or list item that holds ``value`` (``""``: an empty line)."""

    lines: tuple[str, ...]
    value: Any


@dataclasses.dataclass(frozen=True)
class Folded:
    """A long string written as a ``>-`` block, one line per entry; its value is the lines joined by spaces."""

    lines: tuple[str, ...]


def plain(node: Any) -> Any:
    """The data a node stands for: every wrapper replaced by its value."""
    if isinstance(node, (Flow, Anchor, Comment)):
        return plain(node.value)
    if isinstance(node, Folded):
        return " ".join(node.lines)
    if isinstance(node, dict):
        return {key: plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [plain(value) for value in node]
    return node


def _plain_scalar_ok(text: str, flow: bool) -> bool:
    """Whether ``text`` can be written unquoted and read back as the same string."""
    if not text or text != text.strip() or "\n" in text or _NUMBER_LIKE.fullmatch(text):
        return False
    if text[0] in _INDICATORS or ": " in text or " #" in text or text.endswith(":"):
        return False
    if flow and any(character in text for character in _FLOW_INDICATORS):
        return False
    try:
        return yaml.safe_load(text) == text
    except yaml.YAMLError:
        return False


def _scalar(value: Any, flow: bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if not isinstance(value, str):
        raise TypeError(f"cannot write {type(value).__name__} {value!r} as YAML")
    if _plain_scalar_ok(value, flow):
        return value
    if '"' in value and "'" not in value and "\n" not in value:
        return f"'{value}'"
    return json.dumps(value, ensure_ascii=False)


def _inline(node: Any, flow: bool) -> str:
    """A node on one line (flow collections and scalars)."""
    if isinstance(node, Flow):
        return _inline(node.value, True)
    if isinstance(node, (Anchor, Comment, Folded)):
        raise TypeError(f"{type(node).__name__} cannot appear inside a flow collection")
    if isinstance(node, dict):
        return "{" + ", ".join(f"{_scalar(key, True)}: {_inline(value, True)}" for key, value in node.items()) + "}"
    if isinstance(node, list):
        return "[" + ", ".join(_inline(value, True) for value in node) + "]"
    return _scalar(node, flow)


class _Writer:
    """Writes nodes as lines of block YAML, remembering which anchors it has defined."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._anchors: dict[str, Any] = {}

    def comments(self, lines: Sequence[str], indent: int) -> None:
        self.lines += [" " * indent + f"# {line}" if line else "" for line in lines]

    def node(self, prefix: str, node: Any, indent: int) -> None:
        """Writes ``node`` after ``prefix`` (``key:`` or ``-``); block children are indented by ``indent``."""
        anchor = ""
        if isinstance(node, Anchor):
            if node.name in self._anchors:
                if self._anchors[node.name] != node.value:
                    raise ValueError(f"anchor &{node.name} stands for two different values")
                self.lines.append(f"{prefix} *{node.name}")
                return
            self._anchors[node.name] = node.value
            anchor, node = f" &{node.name}", node.value
        if isinstance(node, Folded):
            self.lines.append(f"{prefix}{anchor} >-")
            self.lines += [" " * indent + line for line in node.lines]
        elif isinstance(node, dict) and node:
            self.lines.append(f"{prefix}{anchor}")
            self.mapping(node, indent)
        elif isinstance(node, list) and node:
            self.lines.append(f"{prefix}{anchor}")
            self.sequence(node, indent)
        else:
            self.lines.append(f"{prefix}{anchor} {_inline(node, False)}")

    def mapping(self, mapping: dict[Any, Any], indent: int) -> None:
        for key, node in mapping.items():
            if isinstance(node, Comment):
                self.comments(node.lines, indent)
                node = node.value
            self.node(" " * indent + _scalar(key, False) + ":", node, indent + 2)

    def sequence(self, items: list[Any], indent: int) -> None:
        for node in items:
            if isinstance(node, Comment):
                self.comments(node.lines, indent)
                node = node.value
            if isinstance(node, dict) and node:
                start = len(self.lines)
                self.mapping(node, indent + 2)
                first = self.lines[start]
                if not first.startswith(" " * (indent + 2)) or first.lstrip().startswith("#"):
                    raise ValueError("the first entry of a mapping in a list cannot carry a comment")
                self.lines[start] = " " * indent + "- " + first[indent + 2 :]
            else:
                self.node(" " * indent + "-", node, indent + 2)


def render_yaml(data: dict[str, Any], header: Sequence[str] = ()) -> str:
    """One YAML document, with ``header`` as comment lines above it.

    Args:
        data: The document: a mapping of plain data and :class:`Flow`, :class:`Anchor`, :class:`Comment` and
            :class:`Folded` nodes.
        header: Comment lines (``""``: a line with a bare ``#``).

    Returns:
        The text, ending in a newline.

    Raises:
        ValueError: The text would not read back as ``plain(data)``.
    """
    writer = _Writer()
    writer.lines += [f"# {line}" if line else "#" for line in header]
    writer.mapping(data, 0)
    text = "\n".join(writer.lines) + "\n"
    if yaml.safe_load(text) != plain(data):
        raise ValueError("the YAML written does not read back as the data it was written from")
    return text
