"""Where every output of a run lives in the store (docs/architecture.md#store-layout), in one place.

::

    runs/<run_id>/gan/<CLASS>/                 generator.keras discriminator.keras losses.csv samples.png
                                               samples/epoch-NNNN.png  checkpoints/epoch-NNNN/ (own markers)
    runs/<run_id>/synthetic/<CLASS>/           manifest.csv shards/ selection.json samples.png
    runs/<run_id>/classifiers/<condition>/<model>/seed-<seed>/
                                               model.keras history.csv metrics.json predictions.csv
                                               checkpoints/ (own markers)
    runs/<run_id>/report/                      index.html report.md tables.csv metrics.json figures/*.png

Every prefix above is an output committed with a ``_SUCCESS`` marker (:meth:`cxrcore.storage.Store.commit`).
Seeds get their own level under the model (``<condition>/<model>/`` holds one folder per seed), so
"mean ± sd over seeds" never overwrites a result.
"""

from __future__ import annotations

from cxrcore.storage import join_key
from cxrcore.vocab import CLASS_NAMES, CONDITIONS, MODEL_DIRECTORY_PATTERN, RUN_ID_PATTERN

__all__ = [
    "CLASS_NAMES",
    "CONDITIONS",
    "classifier_prefix",
    "classifiers_root",
    "gan_prefix",
    "report_prefix",
    "run_prefix",
    "synthetic_prefix",
    "validate_run_id",
]



def validate_run_id(run_id: str) -> str:
    """Returns ``run_id`` if it is a safe single key component (Argo's ``{{workflow.name}}`` is)."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
        raise ValueError(f"run_id must match {RUN_ID_PATTERN.pattern}. Received: run_id={run_id!r}")
    return run_id


def _check_class(class_name: str) -> str:
    if class_name not in CLASS_NAMES:
        raise ValueError(f"class_name must be one of {CLASS_NAMES}. Received: class_name={class_name!r}")
    return class_name


def run_prefix(run_id: str) -> str:
    """``runs/<run_id>``."""
    return join_key("runs", validate_run_id(run_id))


def gan_prefix(run_id: str, class_name: str) -> str:
    """``runs/<run_id>/gan/<CLASS>``: the DCGAN of one class."""
    return join_key(run_prefix(run_id), "gan", _check_class(class_name))


def synthetic_prefix(run_id: str, class_name: str) -> str:
    """``runs/<run_id>/synthetic/<CLASS>``: the kept synthetic images of one class."""
    return join_key(run_prefix(run_id), "synthetic", _check_class(class_name))


def classifiers_root(run_id: str) -> str:
    """``runs/<run_id>/classifiers``: every classifier output of a run lies below."""
    return join_key(run_prefix(run_id), "classifiers")


def classifier_prefix(run_id: str, condition: str, model: str, seed: int) -> str:
    """``runs/<run_id>/classifiers/<condition>/<model>/seed-<seed>``."""
    if condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {CONDITIONS}. Received: condition={condition!r}")
    if not MODEL_DIRECTORY_PATTERN.match(model):
        raise ValueError(f"model must match {MODEL_DIRECTORY_PATTERN.pattern}. Received: model={model!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer. Received: seed={seed!r}")
    return join_key(classifiers_root(run_id), condition, model, f"seed-{seed}")


def report_prefix(run_id: str) -> str:
    """``runs/<run_id>/report``."""
    return join_key(run_prefix(run_id), "report")
