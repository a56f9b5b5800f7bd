"""The trainers' parts: model building, training loops, callbacks and metrics (docs/architecture.md#layers).

* :mod:`cxrcore.training.gan`: the DCGAN training loop (``cxr-gan-train``) and its callbacks.
* :mod:`cxrcore.training.gan_state`: what a DCGAN checkpoint holds, staged and restored exactly.
* :mod:`cxrcore.training.classifier_data`: the train and test sides of one classifier (pure).
* :mod:`cxrcore.training.classifier`: the classifier training loop, scoring and ``metrics.json``.

The step orchestrators (:mod:`cxrcore.steps.gan_train`, :mod:`cxrcore.steps.train_classifier`) plan, skip and
commit; these modules compute, with the shared runtime of :mod:`cxrcore.ml`.
"""
