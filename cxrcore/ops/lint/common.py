"""What every part of the lint shares: the :class:`Finding`, field paths and small readers of YAML values."""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = [
    "Finding",
    "child",
    "describe_value",
    "join_path",
    "mapping",
    "names",
    "sequence",
    "strings",
    "suggestion",
]

_SIMPLE_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")


@dataclasses.dataclass(frozen=True)
class Finding:
    """One problem found by the lint.

    Attributes:
        file: The file, relative to the lint root when it lies under it.
        path: Where in the file: a field path (``spec.templates[2].container.image``), ``line N``, or ``-``.
        message: What is wrong (and, where obvious, what to do instead).
    """

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.message}"


def child(path: str, key: Any) -> str:
    """``path`` extended by a mapping key or a list index (``a.b``, ``a[0]``, ``a["x.y/z"]``).

    Args:
        path: The path so far (``""`` at the document's root).
        key: A mapping key or a list index.

    Returns:
        The extended path.
    """
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    key = str(key)
    if _SIMPLE_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def join_path(prefix: str, parts: Iterable[Any]) -> str:
    """``prefix`` extended by every key or index of ``parts``; ``-`` when the result is empty."""
    path = prefix
    for part in parts:
        path = child(path, part)
    return path or "-"


def mapping(value: Any) -> dict[str, Any]:
    """``value`` when it is a mapping, else an empty one (the schema checks report wrong types)."""
    return value if isinstance(value, dict) else {}


def sequence(value: Any) -> list[Any]:
    """``value`` when it is a list, else an empty one (the schema checks report wrong types)."""
    return value if isinstance(value, list) else []


def names(entries: Any) -> list[str]:
    """The ``name`` of every mapping in the list ``entries`` that has a string name."""
    return [
        entry["name"]
        for entry in sequence(entries)
        if isinstance(entry, dict) and isinstance(entry.get("name"), str)
    ]


def suggestion(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``candidates`` to a misspelt ``word``, or ``""``."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.75)
    return f" (did you mean '{close[0]}'?)" if close else ""


def describe_value(value: Any) -> str:
    """``value`` as a message shows it: ``boolean true``, ``number 3``, ``string 'x'``, ``a list``, ..."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string in ``value`` (recursively) with its path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(item, child(path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings(item, child(path, index))
