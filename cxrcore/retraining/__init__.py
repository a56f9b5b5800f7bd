"""Scheduled retraining (``argo/retrain.yaml``) by concern: keys, the ledger of incoming batches, the holdout,
the promotion rule and the registry's records (docs/architecture.md#scheduled-retraining).

The steps that use them are :mod:`cxrcore.steps.incoming` and :mod:`cxrcore.steps.promote`;
:mod:`cxrcore.registry` re-exports the public names under their historical module.
"""
