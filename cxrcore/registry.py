"""Scheduled retraining (``argo/retrain.yaml``): incoming batches, their ledger, and the champion registry.

Store layout (docs/architecture.md#store-layout)::

    incoming/<batch>/...                   X-rays a producer uploads: NORMAL/ and PNEUMONIA/ folders, optionally
                                           below train/ test/ (the ``official`` split reads them)
    incoming/<batch>/_SUCCESS              written by the producer LAST, content ignored: a batch without it is
                                           still being uploaded and is invisible to retraining
    registry/<dataset>/ledger.json         every batch imported into a version of <dataset> (JSON list)
    registry/<task>/champion.json          the model in service; rewritten only on promotion
    registry/<task>/decisions/<UTC time>-<run_id>.json   one record per decision, promote or keep

The three steps of a retraining run:

* ``cxr incoming`` (:func:`run_incoming`, :mod:`cxrcore.steps.incoming`, no TensorFlow): the complete batches
  not yet in the ledger.
* ``cxr-prepare --base-version latest --batches '["b1"]'`` (:mod:`cxrcore.data.ingest`): a new dataset version
  holding every row of the base version (with its split: the holdout never moves) plus the batches' images;
  the ledger is appended after the version is committed, so a batch is imported once.
* ``cxr promote`` (:func:`run_promote`, :mod:`cxrcore.steps.promote`, TensorFlow): champion and challenger
  predict the same holdout; the challenger is promoted when there is no champion, or when it is better by at
  least ``margin`` accuracy and McNemar's exact test (p < ``alpha``) says the difference is not chance.

This module keeps the historical import path; the code lives by concern in :mod:`cxrcore.retraining` (keys,
ledger, holdout, decision, records) and in the two steps.
"""

# The settings and the batch-name parsing live in cxrcore.config; they are re-exported here.
from cxrcore.config import (
    IncomingSettings,
    PromoteSettings,
    parse_batches,
    validate_batch_name,
)
from cxrcore.retraining.decision import Comparison, decide
from cxrcore.retraining.holdout import HOLDOUT_SOURCES, Holdout, select_holdout
from cxrcore.layout import (
    CHAMPION_FILE,
    DECISIONS_DIR,
    LEDGER_FILE,
    REGISTRY_ROOT,
    champion_key,
    decisions_prefix,
    ledger_key,
)
from cxrcore.retraining.ledger import append_to_ledger, read_ledger, scan_incoming
from cxrcore.retraining.records import REGISTRY_FORMAT, read_champion
from cxrcore.steps.incoming import run as run_incoming
from cxrcore.steps.promote import run as run_promote
from cxrcore.vocab import INCOMING_PREFIX

__all__ = [
    "CHAMPION_FILE",
    "DECISIONS_DIR",
    "HOLDOUT_SOURCES",
    "INCOMING_PREFIX",
    "LEDGER_FILE",
    "REGISTRY_FORMAT",
    "REGISTRY_ROOT",
    "Comparison",
    "Holdout",
    "IncomingSettings",
    "PromoteSettings",
    "append_to_ledger",
    "champion_key",
    "decide",
    "decisions_prefix",
    "ledger_key",
    "parse_batches",
    "read_champion",
    "read_ledger",
    "run_incoming",
    "run_promote",
    "scan_incoming",
    "select_holdout",
    "validate_batch_name",
]
