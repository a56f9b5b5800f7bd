"""Where the registry keeps its records in the store (docs/architecture.md#store-layout)::

    registry/<dataset>/ledger.json         every batch imported into a version of <dataset> (JSON list)
    registry/<task>/champion.json          the model in service; rewritten only on promotion
    registry/<task>/decisions/<UTC time>-<run_id>.json   one record per decision, promote or keep
                                           (time: 20260101T030512.123456Z, so keys sort in decision order)
"""

from __future__ import annotations

import re

from cxrcore.storage import join_key
from cxrcore.vocab import DATASET_NAME_PATTERN, TASK_NAME_PATTERN

__all__ = [
    "CHAMPION_FILE",
    "DECISIONS_DIR",
    "LEDGER_FILE",
    "REGISTRY_ROOT",
    "champion_key",
    "decisions_prefix",
    "ledger_key",
]

REGISTRY_ROOT = "registry"
LEDGER_FILE = "ledger.json"
CHAMPION_FILE = "champion.json"
DECISIONS_DIR = "decisions"


def _check_name(value: str, what: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"{what} must match {pattern.pattern}. Received: {what}={value!r}")
    return value


def ledger_key(dataset: str) -> str:
    """``registry/<dataset>/ledger.json``: the batches imported into versions of ``dataset``."""
    return join_key(REGISTRY_ROOT, _check_name(dataset, "dataset", DATASET_NAME_PATTERN), LEDGER_FILE)


def champion_key(task: str) -> str:
    """``registry/<task>/champion.json``: the model in service for ``task``."""
    return join_key(REGISTRY_ROOT, _check_name(task, "task", TASK_NAME_PATTERN), CHAMPION_FILE)


def decisions_prefix(task: str) -> str:
    """``registry/<task>/decisions``: one JSON record per promotion decision."""
    return join_key(REGISTRY_ROOT, _check_name(task, "task", TASK_NAME_PATTERN), DECISIONS_DIR)
