"""``cxr-train-classifier``: train one classifier (model x condition x seed) and evaluate it on the real test set.

See docs/architecture.md#layers (following ``cxr-train-classifier`` from entrypoint to committed output). The
step: plan (dataset version, synthetic digests, :func:`training_inputs`) -> skip when the output is committed
from the same inputs -> check the ImageNet cache, set up the devices, load the data -> train
(:mod:`cxrcore.training.classifier`) -> score through :func:`cxrcore.inference.predict_pixels` -> commit.

Inputs (all read through the store):

* the dataset version (``datasets/<name>/<version>``): ``train`` (and ``val``) rows train, ``test`` rows test;
  with ``validation_fraction > 0`` a validation split is carved from the training rows (grouped by patient,
  no test patient: :func:`cxrcore.training.classifier_data.carve_validation`); it picks the best epoch and the
  decision threshold, the test rows never choose anything;
* for ``condition=augmented``, the kept synthetic images of BOTH classes (``runs/<run_id>/synthetic/NORMAL`` and
  ``.../PNEUMONIA``), which join the training side only (``protocol=clean``), or are pooled and re-split with
  the real images (``protocol=paper-merge``, see :mod:`cxrcore.training.classifier_data`).

Outputs, committed under ``runs/<run_id>/classifiers/<condition>/<model>/seed-<seed>/`` (``_SUCCESS`` last):

* ``model.keras``: the trained model without optimizer state (loads with ``keras.models.load_model`` after
  ``import cxrcore.models``); the probabilities below are its own;
* ``history.csv``: ``epoch, loss, accuracy, seconds`` per epoch;
* ``metrics.json``: :func:`cxrcore.training.classifier.build_metrics`;
* ``predictions.csv``: ``image_id, label, probability`` of every test image, sorted by ``image_id``;
* ``gradcam.png`` and ``gradcam.json`` (unless ``explain_examples=0`` or the model has no convolutional block):
  Grad-CAM heatmaps of up to ``explain_examples`` test images per outcome (true/false positive/negative at the
  threshold of ``metrics.json``, the most confident of each), drawn from the probabilities above
  (:mod:`cxrcore.training.classifier_explain`); the report shows them.

Checkpoints (``checkpoints/epoch-NNNN/``) are committed every ``checkpoint_every`` epochs under their own
markers, with the output's inputs; a restarted job resumes from the newest one (:mod:`cxrcore.ml.checkpoints`).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrcore import __version__
from cxrcore.config import TrainClassifierSettings, identity
from cxrcore.data.dataset import (
    DatasetError,
    dataset_prefix,
    load_dataset,
    load_prefix,
    resolve_version,
)
from cxrcore.inference import MODEL_FILE, fetch_file
from cxrcore.layout import GRADCAM_INFO_FILE, GRADCAM_PANEL_FILE, classifier_prefix, synthetic_prefix
from cxrcore.logging import get_logger
from cxrcore.ml.checkpoints import CHECKPOINTS_DIR, CheckpointSeries
from cxrcore.ml.devices import Devices, configure_devices, dtype_policy
from cxrcore.ml.model_io import inference_copy, put_verified, save_model
from cxrcore.storage import NotCommittedError, Store, join_key, redact_uri, sha256_file
from cxrcore.training.classifier import (
    build_metrics,
    compiled_model,
    history_csv,
    predictions_csv,
    score,
    train_epochs,
)
from cxrcore.training.classifier_data import TrainingData, assemble_training_data, gan_holdout_status
from cxrcore.training.classifier_explain import GradCamExamples, gradcam_examples
from cxrcore.vocab import CLASS_NAMES

__all__ = ["PRODUCER", "TRAINING_FORMAT", "run", "training_inputs"]

#: Bumped when a change of the trainer changes what a trained output means (forces retraining).
#: 2: backbones with weights=none train end to end; the recipe settings (validation split, early stopping,
#: learning-rate schedule, decision threshold) joined the identity. 3: the validation split is carved with
#: validation_seed (one carve for every seed, left out of the GANs), selection_metric, validation.seen_by_gan.
#: 4: an epoch whose validation predictions collapse to one class at 0.5 is chosen only when every epoch's do
#: (history rows gain val_positive_share).
TRAINING_FORMAT = 4
PRODUCER = f"cxr-train-classifier {__version__}"
_METRICS_FILE = "metrics.json"


# ---------------------------------------------------------------------------------------------------- plan
def training_inputs(
    settings: TrainClassifierSettings,
    *,
    dataset_version: str,
    dataset_digest: str,
    synthetic_digests: Mapping[str, str],
) -> dict[str, Any]:
    """The ``inputs`` of the classifier output's marker (and of its checkpoints).

    The settings are :func:`cxrcore.config.identity` (store, logging and checkpoint cadence are left out; the
    custom CNN's ``weights`` resolve to ``"none"``: it has no pretrained weights).
    """
    return {
        "format": TRAINING_FORMAT,
        "dataset": {"name": settings.dataset, "version": dataset_version, "digest": dataset_digest},
        "synthetic": dict(sorted(synthetic_digests.items())),
        "settings": identity(settings),
    }


def _synthetic_markers(store: Store, settings: TrainClassifierSettings) -> dict[str, str]:
    """Digests of both synthetic outputs; a clear error names each one that is not committed."""
    if settings.condition != "augmented":
        return {}
    digests = {}
    missing = []
    for name in CLASS_NAMES:
        prefix = synthetic_prefix(settings.run_id, name)
        marker = store.read_marker(prefix)
        if marker is None:
            missing.append(store.url(prefix))
        else:
            digests[name] = marker.digest
    if missing:
        raise DatasetError(
            "condition=augmented needs the synthetic images of both classes, but "
            + " and ".join(missing)
            + " has no _SUCCESS marker (run cxr-synthesize for that class first). "
            f"Received: run_id={settings.run_id!r}"
        )
    return digests


def _plan(store: Store, settings: TrainClassifierSettings) -> tuple[str, dict[str, Any]]:
    """``(resolved dataset version, inputs of the output)``."""
    version = resolve_version(store, settings.dataset, settings.dataset_version)
    try:
        dataset_marker = store.require_committed(dataset_prefix(settings.dataset, version))
    except NotCommittedError as exc:
        raise DatasetError(str(exc)) from exc
    inputs = training_inputs(
        settings,
        dataset_version=version,
        dataset_digest=dataset_marker.digest,
        synthetic_digests=_synthetic_markers(store, settings),
    )
    return version, inputs


# ---------------------------------------------------------------------------------------------------- inputs
def _require_cached_weights(settings: TrainClassifierSettings) -> None:
    """For ``weights=imagenet``, checks that the Keras cache holds the backbone's file, so Keras never downloads.

    Raises:
        WeightsCacheError: The file is missing or not Keras' (a ``RuntimeError``: exit 1); the message names the
            file, ``KERAS_HOME`` and the fixes (bake the weights into the image, or pass a path / ``s3://`` URI).
    """
    if settings.model == "custom_cnn" or settings.weights.strip().lower() != "imagenet":
        return
    from cxrcore.models.weights_cache import require_imagenet_weights

    path = require_imagenet_weights(settings.model)
    get_logger(__name__, model=settings.model).info("imagenet_weights_cached", path=str(path))


def _resolve_weights(settings: TrainClassifierSettings, work_dir: Path) -> tuple[str | None, dict[str, Any]]:
    """Maps ``settings.weights`` onto what ``build_classifier`` takes: ``None``, ``"imagenet"`` or a local file."""
    weights = settings.weights.strip()
    if settings.model == "custom_cnn" or weights.lower() == "none":
        return None, {"weights": "none"}
    if weights.lower() == "imagenet":
        return "imagenet", {"weights": "imagenet"}
    local = fetch_file(weights, work_dir / "weights", s3=settings.s3.as_options(settings.io_workers))
    return str(local), {"weights": redact_uri(weights), "weights_sha256": sha256_file(local)}


def _load_synthetic(
    store: Store, settings: TrainClassifierSettings
) -> tuple[list[tuple[pd.DataFrame, np.ndarray]], dict[str, dict[str, Any] | None]]:
    """Both classes' kept synthetic images, and the validation split each class's GAN left out (``None``:
    not recorded, a GAN from before ``cxr-gan-train`` format 3)."""
    loaded = []
    holdouts: dict[str, dict[str, Any] | None] = {}
    for name in CLASS_NAMES:
        prefix = synthetic_prefix(settings.run_id, name)
        manifest, images, info, _marker = load_prefix(store, prefix)
        wrong = manifest[manifest["class"] != name]
        if len(wrong):
            raise DatasetError(
                f"{store.url(prefix)} must hold {name} images only. "
                f"Received: classes={sorted(set(wrong['class']))}"
            )
        loaded.append((manifest, images))
        holdout = info.get("gan_validation_holdout") if isinstance(info, dict) else None
        holdouts[name] = holdout if isinstance(holdout, dict) else None
    return loaded, holdouts


def _training_data(store: Store, settings: TrainClassifierSettings, version: str, logger: Any) -> TrainingData:
    """Loads the dataset version (and the synthetic images) and puts the train and test sides together."""
    dataset = load_dataset(store, settings.dataset, version)
    synthetic, holdouts = _load_synthetic(store, settings) if settings.condition == "augmented" else ([], {})
    data = assemble_training_data(
        dataset.manifest,
        dataset.images,
        synthetic,
        protocol=settings.protocol,
        dataset_split_strategy=str(dataset.info.get("split", {}).get("strategy", "unknown")),
        seed=settings.seed,
        image_size=settings.image_size,
        validation_fraction=settings.validation_fraction,
        validation_seed=settings.validation_seed,
    )
    data.validation_seen_by_gan = gan_holdout_status(data.validation_ids, holdouts)
    seen = sorted(name for name, status in data.validation_seen_by_gan.items() if status != "held-out")
    if seen:
        logger.warning(
            "validation_patients_seen_by_gan",
            classes=seen,
            status=data.validation_seen_by_gan,
            hint="train the GANs with the classifiers' validation_fraction and validation_seed",
        )
    logger.info(
        "classifier_data",
        split_strategy=data.split_strategy,
        counts=data.counts,
        test_contaminated=data.test_contaminated,
        patients_on_both_sides=data.patients_on_both_sides,
        validation_patients=data.validation_patients,
    )
    if data.test_contaminated:
        logger.warning("test_contaminated", protocol=settings.protocol, test_synthetic=data.counts["test_synthetic"])
    return data


# ---------------------------------------------------------------------------------------------------- compute
@dataclasses.dataclass
class _Trained:
    """The inference copy of the trained model, its history, its scores and its Grad-CAM examples (if any)."""

    model: Any
    history: list[dict[str, float]]
    train_time_s: float
    test_probabilities: np.ndarray
    metrics: dict[str, Any]
    explanations: GradCamExamples | None = None


def _train_and_score(
    settings: TrainClassifierSettings,
    data: TrainingData,
    *,
    series: CheckpointSeries,
    devices: Devices,
    dataset_version: str,
    work_dir: Path,
    logger: Any,
) -> _Trained:
    """Builds, trains (resuming from the series), scores and explains the classifier; returns what is committed."""
    import keras

    from cxrcore.models import model_summary_counts

    weights, weights_info = _resolve_weights(settings, work_dir)
    keras.utils.set_random_seed(settings.seed)
    model = compiled_model(settings, weights, devices.strategy)
    history, train_time_s = train_epochs(
        model, data, settings, series=series, strategy=devices.strategy, work_dir=work_dir, logger=logger
    )
    inference = inference_copy(model)
    test_probabilities = score(inference, data.test_images, settings)
    # The threshold is chosen on these (validation images only); the test probabilities are only measured.
    validation_probabilities = score(inference, data.validation_images, settings) if len(data.validation_ids) else None
    metrics = build_metrics(
        settings=settings,
        data=data,
        test_probabilities=test_probabilities,
        train_probabilities=score(inference, data.train_images, settings),
        history=history,
        train_time_s=train_time_s,
        params=model_summary_counts(model),
        dataset_info={"name": settings.dataset, "version": dataset_version},
        weights_info=weights_info,
        device=devices.describe(),
        validation_probabilities=validation_probabilities,
    )
    explanations = gradcam_examples(
        inference,
        data,
        test_probabilities,
        per_outcome=settings.explain_examples,
        threshold=float(metrics["threshold"]),
        logger=logger,
    )
    return _Trained(inference, history, train_time_s, test_probabilities, metrics, explanations)


def _commit(
    store: Store, prefix: str, inputs: dict[str, Any], trained: _Trained, data: TrainingData, work_dir: Path
) -> None:
    saved = save_model(trained.model, work_dir / MODEL_FILE)
    with store.commit(prefix, inputs=inputs, producer=PRODUCER, preserve=(CHECKPOINTS_DIR,)) as transaction:
        put_verified(transaction, MODEL_FILE, saved)
        transaction.put_bytes("history.csv", history_csv(trained.history))
        transaction.put_bytes("predictions.csv", predictions_csv(data, trained.test_probabilities))
        transaction.put_json(_METRICS_FILE, trained.metrics)
        if trained.explanations is not None:
            transaction.put_bytes(GRADCAM_PANEL_FILE, trained.explanations.panel_png)
            transaction.put_json(GRADCAM_INFO_FILE, trained.explanations.info)


def _summary(status: str, uri: str, metrics: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("model", "condition", "seed", "accuracy", "auc", "f1_macro", "test_loss", "train_accuracy",
            "train_time_s", "collapsed", "test_contaminated", "split_strategy", "best_epoch", "chosen_threshold")
    return {"status": status, "uri": uri, **{key: metrics.get(key) for key in keys}}


# ---------------------------------------------------------------------------------------------------- the step
def run(settings: TrainClassifierSettings) -> dict[str, Any]:
    """Job entry: trains, evaluates and commits one classifier; skips when the output is already committed.

    Args:
        settings: The job's settings.

    Returns:
        ``status`` (``created`` or ``unchanged``), ``uri`` and the headline metrics.

    Raises:
        DatasetError: The dataset version or a needed synthetic output is missing or not committed.
        FileNotFoundError: A weights file or object is missing (the message names the URI).
        RuntimeError: ``weights=imagenet`` but the Keras cache lacks the backbone's file
            (:class:`cxrcore.models.weights_cache.WeightsCacheError`, raised before the dataset loads), ImageNet
            weights could not be loaded, or training diverged (NaN loss).
    """
    logger = get_logger(__name__, model=settings.model, condition=settings.condition, seed=settings.seed)
    store = settings.open_store()
    prefix = classifier_prefix(settings.run_id, settings.condition, settings.model, settings.seed)
    uri = store.url(prefix)
    version, inputs = _plan(store, settings)
    if store.is_committed(prefix, inputs):
        logger.info("classifier_unchanged", uri=uri)
        return _summary("unchanged", uri, store.get_json(join_key(prefix, _METRICS_FILE)))
    _require_cached_weights(settings)  # before the dataset loads: fail in seconds, not in Keras' download
    store.clean_staging(prefix)
    # Before the first TensorFlow op: GPU memory growth can only be set on fresh devices.
    devices = configure_devices(mixed_precision=settings.mixed_precision, xla=False, logger=logger)
    data = _training_data(store, settings, version, logger)
    logger.info("classifier_device", **devices.describe())
    series = CheckpointSeries(store, prefix, inputs_for=lambda _epoch: inputs, producer=PRODUCER)
    with tempfile.TemporaryDirectory(prefix="cxr-train-classifier-") as tmp, dtype_policy(devices.mixed_precision):
        work_dir = Path(tmp)
        trained = _train_and_score(
            settings, data, series=series, devices=devices, dataset_version=version, work_dir=work_dir, logger=logger
        )
        metrics = trained.metrics
        if metrics["collapsed"]:
            logger.warning(
                "model_collapsed",
                collapsed_to=metrics["collapsed_to"],
                predicted_positive_share=metrics["predicted_positive_share"],
                accuracy=metrics["accuracy"],
                uri=uri,
            )
        _commit(store, prefix, inputs, trained, data, work_dir)
    logger.info(
        "classifier_committed",
        uri=uri,
        accuracy=round(metrics["accuracy"], 4),
        auc=metrics["auc"],
        train_time_s=round(trained.train_time_s, 1),
        collapsed=metrics["collapsed"],
        best_epoch=metrics["best_epoch"],
        chosen_threshold=metrics["chosen_threshold"],
    )
    return _summary("created", uri, metrics)
