"""``cxr matrix``: the classifier fan-out of a workflow, one item per model x seed and condition.

See docs/architecture.md#command-line. The Argo ``matrix`` step runs it before the classifier steps; its result
(``baseline`` and ``augmented``: JSON lists of ``{"model", "seed", "condition"}``; ``count``) feeds their
``withParam``. It reads and writes nothing in the store.
"""

from __future__ import annotations

import json
from typing import Any

from cxrcore.config import MatrixSettings
from cxrcore.vocab import CONDITIONS

__all__ = ["run"]


def run(settings: MatrixSettings) -> dict[str, Any]:
    """Returns ``{"baseline": json, "augmented": json, "count": n}``: one item per model x seed, with its condition.

    Args:
        settings: ``models`` and ``seeds`` as JSON lists.
    """
    models = json.loads(settings.models)
    seeds = json.loads(settings.seeds)
    result: dict[str, Any] = {}
    for condition in CONDITIONS:
        items = [{"model": model, "seed": seed, "condition": condition} for model in models for seed in seeds]
        result[condition] = json.dumps(items, separators=(",", ":"))
    result["count"] = len(models) * len(seeds)
    return result
