"""``cxr outcome``: the workflow's exit handler records its final status in ``runs/<run_id>/workflow.json``.

See docs/architecture.md#store-layout. One atomic object (not a committed prefix): the run id, the Argo status,
the failures Argo reports (a JSON list, or the raw text when it is not JSON) and the time it finished.
"""

from __future__ import annotations

import json
import time
from typing import Any

from cxrcore.config import OutcomeSettings
from cxrcore.layout import run_prefix
from cxrcore.storage import join_key

__all__ = ["run"]


def run(settings: OutcomeSettings) -> dict[str, Any]:
    """Writes ``runs/<run_id>/workflow.json`` and returns it with its ``uri``.

    Args:
        settings: The store, the run id, Argo's status and failures.
    """
    try:
        failures = json.loads(settings.failures) if settings.failures.strip() else []
    except ValueError:
        failures = [{"message": settings.failures}]
    record = {
        "run_id": settings.run_id,
        "status": settings.status,
        "failures": failures,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    store = settings.open_store()
    key = join_key(run_prefix(settings.run_id), "workflow.json")
    store.put_json(key, record)
    return {**record, "uri": store.url(key)}
