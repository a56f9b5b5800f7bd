"""The ML runtime both trainers share: devices, checkpoint series, model files (docs/architecture.md#layers).

* :mod:`cxrcore.ml.devices`: GPU memory growth, distribution strategy, mixed precision and XLA, set up once.
* :mod:`cxrcore.ml.checkpoints`: the ``checkpoints/epoch-NNNN`` outputs of a training run, one pruning rule.
* :mod:`cxrcore.ml.model_io`: model files saved to a temporary file and verified, fetched against ``_SUCCESS``.
"""
