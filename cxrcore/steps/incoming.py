"""``cxr incoming``: the complete incoming batches a dataset has not imported yet (the retraining check).

One small CPU pod, no TensorFlow: lists keys under ``incoming/`` and reads the dataset's ledger
(docs/architecture.md#scheduled-retraining). With no new batch, every later step of ``argo/retrain.yaml`` is
skipped.
"""

from __future__ import annotations

import json
from typing import Any

from cxrcore.config import IncomingSettings
from cxrcore.layout import ledger_key
from cxrcore.retraining.ledger import scan_incoming

__all__ = ["run"]


def run(settings: IncomingSettings) -> dict[str, Any]:
    """Job entry of ``cxr incoming``.

    Args:
        settings: Store, dataset and incoming prefix.

    Returns:
        ``found`` (bool, written ``true``/``false`` for Argo), ``batches`` (a JSON list, as a string, for the
        import's ``--batches``), ``count``, and the ``incoming`` and ``ledger`` URIs.
    """
    store = settings.open_store()
    key = ledger_key(settings.dataset)
    batches = scan_incoming(store, incoming_prefix=settings.incoming_prefix, ledger_key=key)
    return {
        "found": bool(batches),
        "batches": json.dumps(batches, separators=(",", ":")),
        "count": len(batches),
        "incoming": store.url(settings.incoming_prefix),
        "ledger": store.url(key),
    }
