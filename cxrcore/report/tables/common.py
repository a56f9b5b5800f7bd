"""What every table of the report shares: model names and order, the significance level, missing values."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from cxrcore.vocab import MODEL_DISPLAY_NAMES, MODEL_NAMES

__all__ = ["DISPLAY_NAMES", "SIGNIFICANCE_LEVEL", "display_name", "model_order", "present"]

#: Two-sided level at which a McNemar p-value is called significant in the summaries.
SIGNIFICANCE_LEVEL = 0.05

#: Names as the paper's tables print them (our model names otherwise): :data:`cxrcore.vocab.MODEL_DISPLAY_NAMES`.
DISPLAY_NAMES: dict[str, str] = dict(MODEL_DISPLAY_NAMES)


def display_name(model: str) -> str:
    """The model's display name (the paper's spelling for the study's models)."""
    return DISPLAY_NAMES.get(model, model)


def model_order(models: Sequence[str]) -> list[str]:
    """``models`` in the paper's table order, unknown models after them alphabetically."""
    rank = {name: index for index, name in enumerate(MODEL_NAMES)}
    return sorted(set(models), key=lambda name: (rank.get(name, len(rank)), name))



def present(value: Any) -> bool:
    """Whether a table value is there: not ``None`` and not a float ``NaN``."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))
