"""``cxr-train-classifier``: train one classifier (model x condition x seed) and evaluate it on the real test set.

Inputs (all read through the store):

* the dataset version (``datasets/<name>/<version>``): ``train`` (and ``val``) rows train, ``test`` rows test;
* for ``condition=augmented``, the kept synthetic images of BOTH classes (``runs/<run_id>/synthetic/NORMAL`` and
  ``.../PNEUMONIA``), which join the training side only, so the test set is the same real images in both
  conditions and McNemar's test can pair them;
* ``protocol=paper-merge`` reproduces the paper instead: real (+ synthetic when augmented) images are pooled and
  re-split 80/20 stratified at random with the run's seed. Synthetic images then reach the test set, which is
  recorded as ``test_contaminated``.

Outputs, committed under ``runs/<run_id>/classifiers/<condition>/<model>/seed-<seed>/`` (``_SUCCESS`` last):

* ``model.keras``: the trained model (loads with ``keras.models.load_model`` after ``import cxrcore.models``);
* ``history.csv``: ``epoch, loss, accuracy, seconds`` per epoch;
* ``metrics.json``: :func:`cxrcore.metrics.binary_metrics` on the test set plus the paper's other columns
  (``train_accuracy``, ``test_loss``, ``train_time_s``) and provenance (see :func:`build_metrics`);
* ``predictions.csv``: ``image_id, label, probability`` of every test image, sorted by ``image_id``.

Checkpoints (``checkpoints/epoch-NNNN/``: full model with optimizer state + ``state.json`` with the history so far)
are committed every ``checkpoint_every`` epochs under their own markers; a restarted job resumes from the newest
one made from the same inputs. The newest two are kept. A job whose output is already committed from the same
inputs does nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrcore import __version__
from cxrcore.config import TrainClassifierSettings, identity
from cxrcore.data.dataset import (
    CLASS_NAMES,
    DatasetError,
    dataset_prefix,
    load_dataset,
    load_prefix,
    resolve_version,
)
from cxrcore.data.splits import assign_split, patients_on_both_sides
from cxrcore.layout import classifier_prefix, synthetic_prefix
from cxrcore.logging import get_logger
from cxrcore.metrics import binary_metrics
from cxrcore.storage import NotCommittedError, Store, hash_inputs, join_key, redact_uri, sha256_file
from cxrcore.vocab import CHECKPOINT_NAME_PATTERN, PAPER_TEST_FRACTION, PROTOCOLS

__all__ = [
    "CHECKPOINTS_DIR",
    "KEEP_CHECKPOINTS",
    "PAPER_TEST_FRACTION",
    "TRAINING_FORMAT",
    "TrainingData",
    "assemble_training_data",
    "binary_cross_entropy",
    "build_metrics",
    "class_weights",
    "run",
]

#: Bumped when a change of this module changes what a trained output means (forces retraining).
TRAINING_FORMAT = 1
PRODUCER = f"cxr-train-classifier {__version__}"
CHECKPOINTS_DIR = "checkpoints"
KEEP_CHECKPOINTS = 2
#: Keras' ``epsilon()``: the clipping of ``binary_crossentropy``, reproduced by :func:`binary_cross_entropy`.
_BCE_EPSILON = 1e-7
_MODEL_FILE = "model.keras"
_EVAL_BATCH_MULTIPLIER = 2


# ---------------------------------------------------------------------------------------------------- data
@dataclasses.dataclass
class TrainingData:
    """The images one classifier trains and is tested on, already at the model's input size.

    Attributes:
        train_images: uint8 ``(n_train, size, size)``: real training images, then synthetic ones.
        train_labels: int ``(n_train,)`` (1 = PNEUMONIA).
        test_images: uint8 ``(n_test, size, size)``, sorted by ``image_id``.
        test_labels: int ``(n_test,)``.
        test_ids: ``image_id`` of each test image.
        split_strategy: The split in effect: the dataset's (``patient``/``paper``/``official``) for the ``clean``
            protocol, ``paper-merge`` for the pooled re-split.
        dataset_split_strategy: The dataset version's own split strategy.
        patients_on_both_sides: Patients with real images in the test set and in the training set.
        test_contaminated: Whether synthetic images are in the test set (``paper-merge`` with synthetic data).
        counts: Images per side and source (``train_real``, ``train_synthetic``, ``test_real``,
            ``test_synthetic``) and per class (``train_by_class``, ``test_by_class``).
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    test_ids: list[str]
    split_strategy: str
    dataset_split_strategy: str
    patients_on_both_sides: int
    test_contaminated: bool
    counts: dict[str, Any]


def _by_class(labels: np.ndarray) -> dict[str, int]:
    return {name: int((labels == index).sum()) for index, name in enumerate(CLASS_NAMES)}


def assemble_training_data(
    real_manifest: pd.DataFrame,
    real_images: np.ndarray,
    synthetic: Sequence[tuple[pd.DataFrame, np.ndarray]],
    *,
    protocol: str,
    dataset_split_strategy: str,
    seed: int,
    image_size: int,
) -> TrainingData:
    """Puts the train and test sides together (pure: no I/O).

    Args:
        real_manifest: Manifest of the real dataset (``image_id``, ``sha256``, ``class``, ``label``,
            ``patient_id``, ``split``), aligned with ``real_images``.
        real_images: uint8 ``(n, h, w)`` real images.
        synthetic: ``(manifest, images)`` of each synthetic class (empty for the baseline).
        protocol: ``clean`` (synthetic joins the training side only; the dataset's split is kept) or
            ``paper-merge`` (pool everything and re-split stratified 80/20 with ``seed``).
        dataset_split_strategy: The dataset's split strategy, recorded for ``clean``.
        seed: Seed of the ``paper-merge`` split.
        image_size: Model input size; every image is resized to it once.

    Returns:
        The :class:`TrainingData`.

    Raises:
        ValueError: Unknown protocol, or an empty training or test side.
    """
    from cxrcore.data.pipeline import resize_images

    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be 'clean' or 'paper-merge'. Received: protocol={protocol!r}")
    columns = ["image_id", "sha256", "class", "label", "patient_id", "split"]
    frames = [real_manifest.loc[:, columns].assign(synthetic=False)]
    arrays = [resize_images(real_images, image_size)]
    for manifest, images in synthetic:
        frames.append(manifest.loc[:, columns].assign(synthetic=True, split="train"))
        arrays.append(resize_images(images, image_size))
    pool = pd.concat(frames, ignore_index=True)
    pixels = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
    if protocol == "paper-merge":
        pool["split"] = assign_split(pool, "paper", test_fraction=PAPER_TEST_FRACTION, seed=seed).to_numpy()
        strategy = "paper-merge"
    else:
        strategy = dataset_split_strategy
    is_test = (pool["split"] == "test").to_numpy()
    # val rows (official split) train too: the paper had no validation set and no early stopping.
    train_index = np.flatnonzero(~is_test)
    test_frame = pool[is_test].sort_values("image_id", kind="mergesort")
    test_index = test_frame.index.to_numpy()
    if len(train_index) == 0 or len(test_index) == 0:
        raise ValueError(
            "Training needs images on both sides of the split. "
            f"Received: train={len(train_index)}, test={len(test_index)}, protocol={protocol!r}"
        )
    real = ~pool["synthetic"].to_numpy()
    real_rows = pool[real]
    train_labels = pool["label"].to_numpy()[train_index].astype(int)
    test_labels = test_frame["label"].to_numpy().astype(int)
    return TrainingData(
        train_images=pixels[train_index],
        train_labels=train_labels,
        test_images=pixels[test_index],
        test_labels=test_labels,
        test_ids=test_frame["image_id"].astype(str).tolist(),
        split_strategy=strategy,
        dataset_split_strategy=dataset_split_strategy,
        patients_on_both_sides=patients_on_both_sides(real_rows, real_rows["split"]),
        test_contaminated=bool(test_frame["synthetic"].any()),
        counts={
            "train_real": int(real[train_index].sum()),
            "train_synthetic": int((~real[train_index]).sum()),
            "test_real": int(real[test_index].sum()),
            "test_synthetic": int((~real[test_index]).sum()),
            "train_by_class": _by_class(train_labels),
            "test_by_class": _by_class(test_labels),
        },
    )


def class_weights(labels: np.ndarray, mode: str) -> dict[int, float] | None:
    """Keras ``class_weight`` for ``mode``: ``None`` for ``none``, ``n / (2 * n_class)`` for ``balanced``."""
    if mode == "none":
        return None
    if mode != "balanced":
        raise ValueError(f"class_weight must be 'none' or 'balanced'. Received: class_weight={mode!r}")
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=2)
    if (counts == 0).any():
        raise ValueError(f"Balanced class weights need both classes in training. Received: counts={counts.tolist()}")
    return {label: float(len(labels) / (2.0 * count)) for label, count in enumerate(counts)}


def binary_cross_entropy(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean binary cross-entropy as Keras computes it (probabilities clipped to ``[1e-7, 1 - 1e-7]``)."""
    labels = np.asarray(labels, dtype=np.float64).ravel()
    clipped = np.clip(np.asarray(probabilities, dtype=np.float64).ravel(), _BCE_EPSILON, 1.0 - _BCE_EPSILON)
    return float(-np.mean(labels * np.log(clipped) + (1.0 - labels) * np.log(1.0 - clipped)))


# ---------------------------------------------------------------------------------------------------- inputs
def _training_inputs(
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
            missing.append(f"{store.uri.rstrip('/')}/{prefix}")
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


def _load_synthetic(store: Store, settings: TrainClassifierSettings) -> list[tuple[pd.DataFrame, np.ndarray]]:
    loaded = []
    for name in CLASS_NAMES:
        prefix = synthetic_prefix(settings.run_id, name)
        manifest, images, _info, _marker = load_prefix(store, prefix)
        wrong = manifest[manifest["class"] != name]
        if len(wrong):
            raise DatasetError(
                f"{store.uri.rstrip('/')}/{prefix} must hold {name} images only. "
                f"Received: classes={sorted(set(wrong['class']))}"
            )
        loaded.append((manifest, images))
    return loaded


# ---------------------------------------------------------------------------------------------------- weights
def _resolve_weights(
    settings: TrainClassifierSettings, work_dir: Path
) -> tuple[str | None, dict[str, Any]]:
    """Maps ``settings.weights`` onto what ``build_classifier`` takes: ``None``, ``"imagenet"`` or a local file."""
    from cxrcore.evaluate import fetch_file

    weights = settings.weights.strip()
    if settings.model == "custom_cnn":
        return None, {"weights": "none"}
    if weights.lower() == "none":
        return None, {"weights": "none"}
    if weights.lower() == "imagenet":
        return "imagenet", {"weights": "imagenet"}
    local = fetch_file(weights, work_dir / "weights", s3=settings.s3.as_options(settings.io_workers))
    return str(local), {"weights": redact_uri(weights), "weights_sha256": sha256_file(local)}


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


# ---------------------------------------------------------------------------------------------------- devices
def _configure_devices(mixed_precision: bool):
    """Picks the distribution strategy (MirroredStrategy on >1 GPU) and whether mixed precision is usable."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        with contextlib.suppress(RuntimeError, ValueError):  # already initialised: growth cannot change
            tf.config.experimental.set_memory_growth(gpu, True)
    strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    return strategy, gpus, bool(mixed_precision and gpus)


def _device_info(strategy, gpus, mixed_precision: bool) -> dict[str, Any]:
    import keras
    import tensorflow as tf

    names = []
    for gpu in gpus:
        try:
            names.append(tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name))
        except (RuntimeError, ValueError):
            names.append(gpu.name)
    return {
        "gpus": names,
        "gpu_count": len(gpus),
        "replicas": int(strategy.num_replicas_in_sync),
        "strategy": type(strategy).__name__,
        "mixed_precision": mixed_precision,
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


@contextlib.contextmanager
def _dtype_policy(mixed_precision: bool) -> Iterator[None]:
    import keras

    previous = keras.config.dtype_policy()
    if mixed_precision:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


# ---------------------------------------------------------------------------------------------------- model
def _make_optimizer(settings: TrainClassifierSettings):
    import keras

    from cxrcore.models import paper_optimizer

    rate = settings.learning_rate
    if settings.optimizer == "paper":
        return paper_optimizer(settings.model, learning_rate=rate)
    return {
        "adam": keras.optimizers.Adam,
        "rmsprop": keras.optimizers.RMSprop,
        "sgd": keras.optimizers.SGD,
    }[settings.optimizer](learning_rate=rate)


def _build_model(settings: TrainClassifierSettings, weights: str | None):
    """Builds the uncompiled classifier (separate, so tests can substitute a model)."""
    from cxrcore.models import build_classifier

    try:
        return build_classifier(settings.model, input_size=settings.image_size, weights=weights)
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. no network for the ImageNet download
        if weights == "imagenet":
            raise RuntimeError(
                f"Could not load the ImageNet weights of {settings.model}: {type(exc).__name__}: {exc}. Bake them "
                "into the image ($KERAS_HOME/models), or pass --weights none, a local file or an s3:// URI. "
                f"Received: weights={weights!r}"
            ) from exc
        raise


def _compiled_model(settings: TrainClassifierSettings, weights: str | None, strategy):
    import keras

    with strategy.scope():
        model = _build_model(settings, weights)
        model.compile(
            optimizer=_make_optimizer(settings),
            loss=keras.losses.BinaryCrossentropy(),
            metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
        )
    return model


def _epoch_dataset(data: TrainingData, settings: TrainClassifierSettings, epoch: int):
    """The training batches of one epoch: shuffled with a seed of (seed, epoch), so a resumed run sees the same."""
    from cxrcore.data.pipeline import make_dataset

    return make_dataset(
        data.train_images,
        data.train_labels,
        image_size=settings.image_size,
        batch_size=settings.batch_size,
        shuffle=True,
        seed=settings.seed * 100_003 + epoch,
        augment=settings.augment,
    )


def _steps_per_epoch(settings: TrainClassifierSettings, n_train: int) -> int:
    steps = math.ceil(n_train / settings.batch_size)
    return steps if settings.max_steps_per_epoch is None else min(steps, settings.max_steps_per_epoch)


def _fit_one_epoch(
    model, dataset, *, epoch: int, steps: int, class_weight: dict[int, float] | None
) -> dict[str, float]:
    """Trains one epoch; returns its history row (``epoch`` 1-based, Keras metrics, ``seconds``)."""
    started = time.perf_counter()
    history = model.fit(
        dataset,
        epochs=epoch + 1,
        initial_epoch=epoch,
        steps_per_epoch=steps,
        class_weight=class_weight,
        shuffle=False,  # the dataset is already shuffled with the run's seed
        verbose=0,
    )
    seconds = time.perf_counter() - started
    row = {"epoch": epoch + 1}
    row.update({name: float(values[-1]) for name, values in history.history.items()})
    row["seconds"] = seconds
    return row


def _predict(model, images: np.ndarray, settings: TrainClassifierSettings) -> np.ndarray:
    from cxrcore.data.pipeline import make_dataset

    dataset = make_dataset(
        images,
        image_size=settings.image_size,
        batch_size=settings.batch_size * _EVAL_BATCH_MULTIPLIER,
        shuffle=False,
    )
    return np.asarray(model.predict(dataset, verbose=0), dtype=np.float64).reshape(-1)


# ---------------------------------------------------------------------------------------------------- checkpoints
def _checkpoint_epochs(store: Store, prefix: str) -> dict[int, str]:
    """``{epoch: key}`` of every checkpoint folder below ``prefix`` (committed or not)."""
    found = {}
    for key in store.list_prefixes(join_key(prefix, CHECKPOINTS_DIR)):
        match = CHECKPOINT_NAME_PATTERN.match(key.rsplit("/", 1)[-1])
        if match:
            found[int(match.group(1))] = key
    return found


def _save_checkpoint(
    store: Store, prefix: str, model, state: dict[str, Any], inputs: Mapping[str, Any], work_dir: Path
) -> str:
    epoch = int(state["epoch"])
    key = join_key(prefix, CHECKPOINTS_DIR, f"epoch-{epoch:04d}")
    path = work_dir / f"checkpoint-{epoch:04d}.keras"
    model.save(path)
    try:
        with store.commit(key, inputs=inputs, producer=PRODUCER) as tx:
            tx.put_file(_MODEL_FILE, path)
            tx.put_json("state.json", state)
    finally:
        path.unlink(missing_ok=True)
    _prune_checkpoints(store, prefix, keep=KEEP_CHECKPOINTS)
    return key


def _prune_checkpoints(store: Store, prefix: str, *, keep: int) -> None:
    """Deletes every checkpoint but the newest ``keep`` committed ones (marker first, so none is half-visible)."""
    epochs = _checkpoint_epochs(store, prefix)
    committed = [epoch for epoch in sorted(epochs, reverse=True) if store.read_marker(epochs[epoch]) is not None]
    kept = set(committed[:keep])
    newest = max(kept, default=-1)
    for epoch, key in epochs.items():
        # Uncommitted folders newer than the newest committed one may be a commit in progress: leave them.
        if epoch in kept or (epoch > newest and epoch not in committed):
            continue
        store.delete(join_key(key, "_SUCCESS"))
        store.delete_prefix(key)


def _latest_checkpoint(store: Store, prefix: str, inputs: Mapping[str, Any]) -> tuple[str, Any] | None:
    """The newest committed checkpoint made from ``inputs``: ``(key, marker)``, or ``None``."""
    expected = hash_inputs(inputs)
    epochs = _checkpoint_epochs(store, prefix)
    for epoch in sorted(epochs, reverse=True):
        marker = store.read_marker(epochs[epoch])
        if marker is not None and marker.inputs_hash == expected:
            return epochs[epoch], marker
    return None


def _restore_checkpoint(store: Store, key: str, marker, model, strategy, work_dir: Path) -> dict[str, Any]:
    """Loads weights and optimizer state of checkpoint ``key`` into the compiled ``model``; returns its state."""
    path = store.get_file(
        join_key(key, _MODEL_FILE), work_dir / "resume.keras", sha256=marker.outputs[_MODEL_FILE]["sha256"]
    )
    state = json.loads(store.get_bytes(join_key(key, "state.json"), sha256=marker.outputs["state.json"]["sha256"]))
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
        model.load_weights(path)
    path.unlink(missing_ok=True)
    return state


def _train(
    model,
    data: TrainingData,
    settings: TrainClassifierSettings,
    *,
    store: Store,
    prefix: str,
    inputs: Mapping[str, Any],
    strategy,
    work_dir: Path,
) -> tuple[list[dict[str, float]], float]:
    """Trains ``model`` for the remaining epochs, resuming from and writing checkpoints; returns history and seconds."""
    import keras

    log = get_logger(__name__, model=settings.model, condition=settings.condition, seed=settings.seed)
    weights_for_class = class_weights(data.train_labels, settings.class_weight)
    steps = _steps_per_epoch(settings, len(data.train_labels))
    history: list[dict[str, float]] = []
    train_time_s = 0.0
    start_epoch = 0
    found = _latest_checkpoint(store, prefix, inputs)
    if found is not None:
        state = _restore_checkpoint(store, found[0], found[1], model, strategy, work_dir)
        history, train_time_s, start_epoch = list(state["history"]), float(state["train_time_s"]), int(state["epoch"])
        log.info("classifier_resumed", checkpoint=found[0], epoch=start_epoch)
    for epoch in range(start_epoch, settings.epochs):
        keras.utils.set_random_seed(settings.seed * 100_003 + epoch)
        row = _fit_one_epoch(
            model, _epoch_dataset(data, settings, epoch), epoch=epoch, steps=steps, class_weight=weights_for_class
        )
        if not math.isfinite(row.get("loss", float("nan"))):
            log.error("training_diverged", epoch=epoch + 1, loss=row.get("loss"))
            raise RuntimeError(
                f"Training of {settings.model} diverged: the loss is {row.get('loss')} at epoch {epoch + 1}; "
                f"lower the learning rate. Received: learning_rate={settings.learning_rate}"
            )
        history.append(row)
        train_time_s += row["seconds"]
        log.info("classifier_epoch", epochs=settings.epochs, steps=steps, **row)
        done = epoch + 1
        if done % settings.checkpoint_every == 0 and done < settings.epochs:
            state = {"epoch": done, "history": history, "train_time_s": train_time_s}
            key = _save_checkpoint(store, prefix, model, state, inputs, work_dir)
            log.info("classifier_checkpoint", checkpoint=key, epoch=done)
    return history, train_time_s


# ---------------------------------------------------------------------------------------------------- outputs
def build_metrics(
    *,
    settings: TrainClassifierSettings,
    data: TrainingData,
    test_probabilities: np.ndarray,
    train_probabilities: np.ndarray,
    history: list[dict[str, float]],
    train_time_s: float,
    params: tuple[int, int],
    dataset_info: Mapping[str, Any],
    weights_info: Mapping[str, Any],
    device: Mapping[str, Any],
) -> dict[str, Any]:
    """The content of ``metrics.json`` (pure).

    Returns:
        :func:`cxrcore.metrics.binary_metrics` of the test set (``n``, ``accuracy``, ``accuracy_ci95``,
        ``precision_macro``, ``recall_macro``, ``f1_macro``, ``per_class``, ``sensitivity``, ``specificity``,
        ``auc``, ``confusion_matrix``, ``predicted_positive_share``, ``collapsed``, ``collapsed_to``) plus
        ``test_loss``, ``train_accuracy``, ``train_loss``, ``train_time_s``, ``model``, ``condition``, ``seed``,
        ``epochs``, ``epochs_trained``, ``steps_per_epoch``, training settings, ``params_total``,
        ``params_trainable``, ``dataset``, ``dataset_version``, ``split_strategy``, ``dataset_split_strategy``,
        ``patients_on_both_sides``, ``protocol``, ``test_contaminated``, ``counts`` (with ``train_real`` and
        ``train_synthetic``), ``weights``, ``device`` and ``cxrcore_version``.
    """
    metrics = binary_metrics(data.test_labels, test_probabilities)
    train_predictions = (train_probabilities >= 0.5).astype(int)
    return {
        **metrics,
        "test_loss": binary_cross_entropy(data.test_labels, test_probabilities),
        "train_accuracy": float((train_predictions == data.train_labels).mean()),
        "train_loss": binary_cross_entropy(data.train_labels, train_probabilities),
        "train_time_s": float(train_time_s),
        "model": settings.model,
        "condition": settings.condition,
        "seed": settings.seed,
        "epochs": settings.epochs,
        "epochs_trained": len(history),
        "steps_per_epoch": _steps_per_epoch(settings, len(data.train_labels)),
        "batch_size": settings.batch_size,
        "image_size": settings.image_size,
        "learning_rate": settings.learning_rate,
        "optimizer": settings.optimizer,
        "class_weight": settings.class_weight,
        "augment": settings.augment,
        "params_total": int(params[0]),
        "params_trainable": int(params[1]),
        "dataset": dataset_info["name"],
        "dataset_version": dataset_info["version"],
        "split_strategy": data.split_strategy,
        "dataset_split_strategy": data.dataset_split_strategy,
        "patients_on_both_sides": data.patients_on_both_sides,
        "protocol": settings.protocol,
        "test_contaminated": data.test_contaminated,
        "counts": data.counts,
        **dict(weights_info),
        "device": dict(device),
        "cxrcore_version": __version__,
    }


def _history_csv(history: list[dict[str, float]]) -> bytes:
    frame = pd.DataFrame(history)
    leading = [column for column in ("epoch", "loss", "accuracy") if column in frame.columns]
    rest = [column for column in frame.columns if column not in (*leading, "seconds")]
    frame = frame.loc[:, [*leading, *rest, "seconds"]]
    return frame.to_csv(index=False, lineterminator="\n").encode()


def _predictions_csv(data: TrainingData, probabilities: np.ndarray) -> bytes:
    frame = pd.DataFrame({"image_id": data.test_ids, "label": data.test_labels, "probability": probabilities})
    # Full precision (round-trips exactly), so the confusion matrix recomputed from this file matches metrics.json.
    return frame.to_csv(index=False, lineterminator="\n").encode()


def _summary(status: str, uri: str, metrics: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("model", "condition", "seed", "accuracy", "auc", "f1_macro", "test_loss", "train_accuracy",
            "train_time_s", "collapsed", "test_contaminated", "split_strategy")
    return {"status": status, "uri": uri, **{key: metrics.get(key) for key in keys}}


# ---------------------------------------------------------------------------------------------------- job
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
    log = get_logger(__name__, model=settings.model, condition=settings.condition, seed=settings.seed)
    store = settings.open_store()
    prefix = classifier_prefix(settings.run_id, settings.condition, settings.model, settings.seed)
    uri = f"{store.uri.rstrip('/')}/{prefix}"

    version = resolve_version(store, settings.dataset, settings.dataset_version)
    try:
        dataset_marker = store.require_committed(dataset_prefix(settings.dataset, version))
    except NotCommittedError as exc:
        raise DatasetError(str(exc)) from exc
    inputs = _training_inputs(
        settings,
        dataset_version=version,
        dataset_digest=dataset_marker.digest,
        synthetic_digests=_synthetic_markers(store, settings),
    )
    if store.is_committed(prefix, inputs):
        log.info("classifier_unchanged", uri=uri)
        return _summary("unchanged", uri, store.get_json(join_key(prefix, "metrics.json")))
    _require_cached_weights(settings)  # before the dataset loads: fail in seconds, not in Keras' download
    store.clean_staging(prefix)
    # Before the first TensorFlow op (resizing below): GPU memory growth can only be set on fresh devices.
    strategy, gpus, mixed_precision = _configure_devices(settings.mixed_precision)

    dataset = load_dataset(store, settings.dataset, version)
    synthetic = _load_synthetic(store, settings) if settings.condition == "augmented" else []
    data = assemble_training_data(
        dataset.manifest,
        dataset.images,
        synthetic,
        protocol=settings.protocol,
        dataset_split_strategy=str(dataset.info.get("split", {}).get("strategy", "unknown")),
        seed=settings.seed,
        image_size=settings.image_size,
    )
    del dataset, synthetic
    log.info(
        "classifier_data",
        split_strategy=data.split_strategy,
        counts=data.counts,
        test_contaminated=data.test_contaminated,
        patients_on_both_sides=data.patients_on_both_sides,
    )
    if data.test_contaminated:
        log.warning("test_contaminated", protocol=settings.protocol, test_synthetic=data.counts["test_synthetic"])

    import keras

    if settings.mixed_precision and not mixed_precision:
        log.warning("mixed_precision_ignored", reason="no GPU: mixed_float16 is for GPUs")
    device = _device_info(strategy, gpus, mixed_precision)
    log.info("classifier_device", **device)

    with tempfile.TemporaryDirectory(prefix="cxr-train-classifier-") as tmp, _dtype_policy(mixed_precision):
        work_dir = Path(tmp)
        weights, weights_info = _resolve_weights(settings, work_dir)
        keras.utils.set_random_seed(settings.seed)
        model = _compiled_model(settings, weights, strategy)
        params = _param_counts(model)

        history, train_time_s = _train(
            model, data, settings, store=store, prefix=prefix, inputs=inputs, strategy=strategy, work_dir=work_dir
        )

        test_probabilities = _predict(model, data.test_images, settings)
        train_probabilities = _predict(model, data.train_images, settings)
        if not (np.isfinite(test_probabilities).all() and np.isfinite(train_probabilities).all()):
            raise RuntimeError(
                f"{settings.model} predicts NaN: training diverged. Received: learning_rate={settings.learning_rate}"
            )
        metrics = build_metrics(
            settings=settings,
            data=data,
            test_probabilities=test_probabilities,
            train_probabilities=train_probabilities,
            history=history,
            train_time_s=train_time_s,
            params=params,
            dataset_info={"name": settings.dataset, "version": version},
            weights_info=weights_info,
            device=device,
        )
        if metrics["collapsed"]:
            log.warning(
                "model_collapsed",
                collapsed_to=metrics["collapsed_to"],
                predicted_positive_share=metrics["predicted_positive_share"],
                accuracy=metrics["accuracy"],
                uri=uri,
            )
        model_path = work_dir / _MODEL_FILE
        _inference_copy(model).save(model_path)
        with store.commit(prefix, inputs=inputs, producer=PRODUCER, preserve=(CHECKPOINTS_DIR,)) as tx:
            tx.put_file(_MODEL_FILE, model_path)
            tx.put_bytes("history.csv", _history_csv(history))
            tx.put_bytes("predictions.csv", _predictions_csv(data, test_probabilities))
            tx.put_json("metrics.json", metrics)
    log.info(
        "classifier_committed",
        uri=uri,
        accuracy=round(metrics["accuracy"], 4),
        auc=metrics["auc"],
        train_time_s=round(train_time_s, 1),
        collapsed=metrics["collapsed"],
    )
    return _summary("created", uri, metrics)


def _inference_copy(model):
    """The trained model without optimizer state (a third of the size for Adam): what ``model.keras`` holds."""
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _param_counts(model) -> tuple[int, int]:
    from cxrcore.models import model_summary_counts

    return model_summary_counts(model)
