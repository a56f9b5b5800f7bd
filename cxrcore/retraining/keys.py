"""Where the registry keeps its records in the store, under its historical module name.

The keys are built in :mod:`cxrcore.layout` with every other store key (docs/architecture.md#store-layout)::

    registry/<dataset>/ledger.json         every batch imported into a version of <dataset> (JSON list)
    registry/<task>/champion.json          the model in service; rewritten only on promotion
    registry/<task>/decisions/<UTC time>-<run_id>.json   one record per decision, promote or keep
"""

from cxrcore.layout import (
    CHAMPION_FILE,
    DECISIONS_DIR,
    LEDGER_FILE,
    REGISTRY_ROOT,
    champion_key,
    decisions_prefix,
    ledger_key,
)

__all__ = [
    "CHAMPION_FILE",
    "DECISIONS_DIR",
    "LEDGER_FILE",
    "REGISTRY_ROOT",
    "champion_key",
    "decisions_prefix",
    "ledger_key",
]
