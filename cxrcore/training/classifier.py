"""The classifier training loop of ``cxr-train-classifier``: model, epochs, checkpoints, scoring, metrics.

See docs/architecture.md#layers. Every epoch is one ``fit`` call on batches shuffled with a seed of
``(seed, epoch)``, so a run resumed from a checkpoint sees the batches the uninterrupted run would have seen. A
checkpoint (``checkpoints/epoch-NNNN/``: ``model.keras`` with optimizer state and ``state.json`` with the
history so far, plus ``best_weights.npz`` with a validation split) is committed every ``checkpoint_every``
epochs before the last, through the shared :class:`cxrcore.ml.checkpoints.CheckpointSeries`.

The recipe (:mod:`cxrcore.training.classifier_recipe`): the learning rate of each epoch follows
``lr_schedule``; with a validation split every epoch's history row gains ``val_loss``, ``val_accuracy`` and
``val_auc`` (of the validation images only), training stops ``early_stopping_patience`` epochs after the best
one, the best epoch's weights are restored, and ``metrics.json`` adds the test metrics at the threshold chosen
on the validation predictions for ``target_sensitivity``. A backbone with ``weights=none`` trains end to end
from scratch (:func:`cxrcore.models.build_classifier` ``from_scratch=True``): frozen random features collapse.

Scoring goes through :func:`cxrcore.inference.predict_pixels`, the one inference path that evaluation,
prediction, promotion and synthesis use, applied to the inference copy that is saved as ``model.keras``: what
``metrics.json`` and ``predictions.csv`` report is what the saved model predicts.

TensorFlow is imported inside the functions that need it: importing this module stays light.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrcore import __version__
from cxrcore.config import TrainClassifierSettings
from cxrcore.inference import MODEL_FILE, predict_pixels
from cxrcore.metrics import binary_metrics, roc_auc
from cxrcore.ml.checkpoints import STATE_FILE, CheckpointSeries, read_state, write_state
from cxrcore.ml.model_io import fetch_verified, inference_copy, save_model
from cxrcore.training.classifier_data import (
    TrainingData,
    binary_cross_entropy,
    class_weights,
)
from cxrcore.training.classifier_recipe import (
    best_epoch,
    choose_threshold,
    learning_rate_for_epoch,
    operating_point,
    should_stop,
)

__all__ = [
    "BEST_WEIGHTS_FILE",
    "build_metrics",
    "compiled_model",
    "history_csv",
    "predictions_csv",
    "recipe_metrics",
    "score",
    "steps_per_epoch",
    "train_epochs",
]

#: Prediction batches are this many training batches (no gradients: twice the images fit).
_EVAL_BATCH_MULTIPLIER = 2
#: The weights of the best epoch so far, in a checkpoint of a run with a validation split.
BEST_WEIGHTS_FILE = "best_weights.npz"


# ---------------------------------------------------------------------------------------------------- model
def _make_optimizer(settings: TrainClassifierSettings) -> Any:
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


def _build_model(settings: TrainClassifierSettings, weights: str | None) -> Any:
    """Builds the uncompiled classifier (separate, so tests can substitute a model)."""
    from cxrcore.models import build_classifier

    # Without pretrained weights a frozen backbone is random features: train it end to end instead.
    from_scratch = settings.model != "custom_cnn" and weights is None
    try:
        return build_classifier(
            settings.model, input_size=settings.image_size, weights=weights, from_scratch=from_scratch
        )
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


def compiled_model(settings: TrainClassifierSettings, weights: str | None, strategy: Any) -> Any:
    """The classifier, compiled with the settings' optimizer and binary cross-entropy, under ``strategy``."""
    import keras

    with strategy.scope():
        model = _build_model(settings, weights)
        model.compile(
            optimizer=_make_optimizer(settings),
            loss=keras.losses.BinaryCrossentropy(),
            metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
        )
    return model


# ---------------------------------------------------------------------------------------------------- epochs
def _epoch_dataset(data: TrainingData, settings: TrainClassifierSettings, epoch: int) -> Any:
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


def steps_per_epoch(settings: TrainClassifierSettings, n_train: int) -> int:
    """``ceil(n_train / batch_size)``, at most ``max_steps_per_epoch``."""
    steps = math.ceil(n_train / settings.batch_size)
    return steps if settings.max_steps_per_epoch is None else min(steps, settings.max_steps_per_epoch)


def _fit_one_epoch(
    model: Any, dataset: Any, *, epoch: int, steps: int, class_weight: dict[int, float] | None
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


def _save_checkpoint(
    series: CheckpointSeries, model: Any, state: dict[str, Any], work_dir: Path, best_weights: list[np.ndarray] | None
) -> str:
    """Commits ``model.keras`` (weights and optimizer state), ``state.json`` and, with a validation split, the
    best epoch's weights (``best_weights.npz``) as the checkpoint of its epoch."""
    epoch = int(state["epoch"])
    local = work_dir / f"checkpoint-{epoch:04d}"
    try:
        saved = save_model(model, local / MODEL_FILE)
        write_state(local, state)
        if best_weights is not None:
            np.savez(local / BEST_WEIGHTS_FILE, *best_weights)
        key, _pruned = series.commit(epoch, local, saved={MODEL_FILE: saved})
    finally:
        shutil.rmtree(local, ignore_errors=True)
    return key


def _resume(
    series: CheckpointSeries, model: Any, strategy: Any, *, epochs: int, validation: bool, work_dir: Path, logger: Any
) -> tuple[list[dict[str, float]], float, int, list[np.ndarray] | None]:
    """Loads the newest checkpoint of the series into the compiled ``model``.

    Returns:
        ``(history, train_time_s, epoch, best epoch's weights or None)``.
    """
    candidates = series.resume_candidates(epochs)
    if not candidates:
        return [], 0.0, 0, None
    checkpoint = candidates[0]
    local = work_dir / "resume"
    targets = {MODEL_FILE: local / MODEL_FILE, STATE_FILE: local / STATE_FILE}
    if validation:
        targets[BEST_WEIGHTS_FILE] = local / BEST_WEIGHTS_FILE
    try:
        files = fetch_verified(series.store, checkpoint.key, checkpoint.marker, targets)
        state = read_state(local)
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)
            model.load_weights(files[MODEL_FILE])
        best_weights = None
        if validation:
            with np.load(files[BEST_WEIGHTS_FILE]) as arrays:
                best_weights = [arrays[f"arr_{index}"] for index in range(len(arrays.files))]
    finally:
        shutil.rmtree(local, ignore_errors=True)
    logger.info("classifier_resumed", checkpoint=checkpoint.key, epoch=int(state["epoch"]))
    return list(state["history"]), float(state["train_time_s"]), int(state["epoch"]), best_weights


def _validation_row(model: Any, data: TrainingData, settings: TrainClassifierSettings) -> dict[str, float]:
    """``val_loss``, ``val_accuracy`` and ``val_positive_share`` (at 0.5) and ``val_auc`` of the model on the
    VALIDATION images only."""
    probabilities = score(inference_copy(model), data.validation_images, settings)
    labels = data.validation_labels
    auc = roc_auc(labels, probabilities)
    predicted = (probabilities >= 0.5).astype(int)
    return {
        "val_loss": binary_cross_entropy(labels, probabilities),
        "val_accuracy": float((predicted == labels).mean()),
        "val_auc": float("nan") if auc is None else float(auc),
        "val_positive_share": float(predicted.mean()),
    }


def _train_one_epoch(
    model: Any,
    data: TrainingData,
    settings: TrainClassifierSettings,
    *,
    epoch: int,
    steps: int,
    history: list[dict[str, float]],
    logger: Any,
) -> dict[str, float]:
    """One epoch at the scheduled learning rate; its history row (with ``val_*`` given a validation split)."""
    import keras

    keras.utils.set_random_seed(settings.seed * 100_003 + epoch)
    rate = learning_rate_for_epoch(
        settings.lr_schedule, settings.learning_rate, epoch, settings.epochs, history, settings.selection_metric
    )
    if settings.lr_schedule != "constant":
        model.optimizer.learning_rate = rate
    weights_for_class = class_weights(data.train_labels, settings.class_weight)
    row = _fit_one_epoch(
        model, _epoch_dataset(data, settings, epoch), epoch=epoch, steps=steps, class_weight=weights_for_class
    )
    if not math.isfinite(row.get("loss", float("nan"))):
        logger.error("training_diverged", epoch=epoch + 1, loss=row.get("loss"))
        raise RuntimeError(
            f"Training of {settings.model} diverged: the loss is {row.get('loss')} at epoch {epoch + 1}; "
            f"lower the learning rate. Received: learning_rate={rate}"
        )
    seconds = row.pop("seconds")
    if len(data.validation_labels):
        row.update(_validation_row(model, data, settings))
    if settings.lr_schedule != "constant":
        row["learning_rate"] = rate
    row["seconds"] = seconds
    return row


def train_epochs(
    model: Any,
    data: TrainingData,
    settings: TrainClassifierSettings,
    *,
    series: CheckpointSeries,
    strategy: Any,
    work_dir: Path,
    logger: Any,
) -> tuple[list[dict[str, float]], float]:
    """Trains ``model`` for the epochs not yet checkpointed, committing checkpoints on the way.

    With a validation split, training stops ``early_stopping_patience`` epochs after the epoch with the best
    ``selection_metric`` (:func:`cxrcore.training.classifier_recipe.best_epoch`), and that epoch's weights are
    put back into ``model`` before returning.

    Returns:
        ``(history rows of every epoch, training seconds of every epoch)``, restored epochs included.

    Raises:
        RuntimeError: The loss is not finite (training diverged).
    """
    validation = len(data.validation_labels) > 0
    steps = steps_per_epoch(settings, len(data.train_labels))
    history, train_time_s, start_epoch, best_weights = _resume(
        series, model, strategy, epochs=settings.epochs, validation=validation, work_dir=work_dir, logger=logger
    )
    for epoch in range(start_epoch, settings.epochs):
        if should_stop(history, settings.early_stopping_patience, settings.selection_metric):
            break
        row = _train_one_epoch(model, data, settings, epoch=epoch, steps=steps, history=history, logger=logger)
        history.append(row)
        train_time_s += row["seconds"]
        logger.info("classifier_epoch", epochs=settings.epochs, steps=steps, **row)
        if validation and best_epoch(history, settings.selection_metric) == len(history):
            best_weights = model.get_weights()
        done = epoch + 1
        if done % settings.checkpoint_every == 0 and done < settings.epochs:
            state = {"epoch": done, "history": history, "train_time_s": train_time_s}
            key = _save_checkpoint(series, model, state, work_dir, best_weights)
            logger.info("classifier_checkpoint", checkpoint=key, epoch=done)
    if validation:
        model.set_weights(best_weights)
        logger.info(
            "classifier_best_epoch",
            best_epoch=best_epoch(history, settings.selection_metric),
            epochs_trained=len(history),
            stopped_early=len(history) < settings.epochs,
        )
    return history, train_time_s


# ---------------------------------------------------------------------------------------------------- scoring
def score(model: Any, images: np.ndarray, settings: TrainClassifierSettings) -> np.ndarray:
    """P(PNEUMONIA) of uint8 ``(n, size, size)`` images through :func:`cxrcore.inference.predict_pixels`.

    Args:
        model: The inference copy (:func:`cxrcore.ml.model_io.inference_copy`): built outside any strategy.
        images: The images, at the model's input size.
        settings: The job settings (batch size, model name and learning rate for the error).

    Raises:
        RuntimeError: The model does not give one finite probability per image (training diverged).
    """
    try:
        return predict_pixels(model, images, batch_size=settings.batch_size * _EVAL_BATCH_MULTIPLIER)
    except ValueError as exc:
        raise RuntimeError(
            f"{settings.model} predicts NaN: training diverged ({exc}). "
            f"Received: learning_rate={settings.learning_rate}"
        ) from exc


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
    validation_probabilities: np.ndarray | None = None,
) -> dict[str, Any]:
    """The content of ``metrics.json`` (pure).

    ``validation_probabilities`` are the final model's probabilities of ``data.validation_images``: the decision
    threshold is chosen on them (:func:`recipe_metrics`); the test probabilities are only measured.

    Returns:
        :func:`cxrcore.metrics.binary_metrics` of the test set (``n``, ``accuracy``, ``accuracy_ci95``,
        ``precision_macro``, ``recall_macro``, ``f1_macro``, ``per_class``, ``sensitivity``, ``specificity``,
        ``auc``, ``confusion_matrix``, ``predicted_positive_share``, ``collapsed``, ``collapsed_to``) plus
        ``test_loss``, ``train_accuracy``, ``train_loss``, ``train_time_s``, ``model``, ``condition``, ``seed``,
        ``epochs``, ``epochs_trained``, ``steps_per_epoch``, training settings, ``params_total``,
        ``params_trainable``, ``dataset``, ``dataset_version``, ``split_strategy``, ``dataset_split_strategy``,
        ``patients_on_both_sides``, ``protocol``, ``test_contaminated``, ``counts`` (with ``train_real`` and
        ``train_synthetic``), ``weights``, ``device`` and ``cxrcore_version``, plus the recipe's settings and
        results (:func:`recipe_metrics`). The metrics at 0.5 keep their names.
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
        "steps_per_epoch": steps_per_epoch(settings, len(data.train_labels)),
        "batch_size": settings.batch_size,
        "image_size": settings.image_size,
        "learning_rate": settings.learning_rate,
        "optimizer": settings.optimizer,
        "class_weight": settings.class_weight,
        "augment": settings.augment,
        **recipe_metrics(settings, data, history, test_probabilities, validation_probabilities),
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


def recipe_metrics(
    settings: TrainClassifierSettings,
    data: TrainingData,
    history: list[dict[str, float]],
    test_probabilities: np.ndarray,
    validation_probabilities: np.ndarray | None,
) -> dict[str, Any]:
    """The recipe's part of ``metrics.json`` (pure): what was chosen on the validation split, and its effect.

    Returns:
        ``validation_fraction``, ``early_stopping_patience``, ``lr_schedule``, ``target_sensitivity``;
        ``best_epoch`` and ``stopped_early``; ``validation`` (``n``, ``by_class``, ``patients``,
        ``patients_in_train``, ``patients_in_test``, ``loss``, ``auc``, ``at_default_threshold`` and
        ``at_chosen_threshold``; ``None`` without a validation split); ``chosen_threshold`` (the highest
        threshold whose VALIDATION sensitivity reaches ``target_sensitivity``, or ``None``), and the TEST
        metrics (:func:`cxrcore.training.classifier_recipe.operating_point`: ``threshold``, ``n``,
        ``accuracy``, ``accuracy_ci95``, ``sensitivity``, ``specificity``, ``confusion_matrix``) at 0.5
        (``at_default_threshold``) and at the chosen threshold (``at_chosen_threshold``, ``None`` without one).
    """
    recipe: dict[str, Any] = {
        "validation_fraction": settings.validation_fraction,
        "early_stopping_patience": settings.early_stopping_patience,
        "selection_metric": settings.selection_metric,
        "lr_schedule": settings.lr_schedule,
        "target_sensitivity": settings.target_sensitivity,
        "best_epoch": None,
        "stopped_early": False,
        "validation": None,
        "chosen_threshold": None,
        "at_default_threshold": operating_point(data.test_labels, test_probabilities, 0.5),
        "at_chosen_threshold": None,
    }
    if validation_probabilities is None or len(data.validation_labels) == 0:
        return recipe
    labels = data.validation_labels
    threshold = choose_threshold(labels, validation_probabilities, settings.target_sensitivity)
    auc = roc_auc(labels, validation_probabilities)
    recipe["best_epoch"] = best_epoch(history, settings.selection_metric) if history else None
    recipe["stopped_early"] = len(history) < settings.epochs
    recipe["validation"] = {
        "n": int(len(labels)),
        "by_class": data.counts["validation_by_class"],
        "patients": data.validation_patients["patients"],
        "patients_in_train": data.validation_patients["in_train"],
        "patients_in_test": data.validation_patients["in_test"],
        "seen_by_gan": dict(data.validation_seen_by_gan),
        "loss": binary_cross_entropy(labels, validation_probabilities),
        "auc": None if auc is None else float(auc),
        "at_default_threshold": operating_point(labels, validation_probabilities, 0.5),
        "at_chosen_threshold": (
            None if threshold is None else operating_point(labels, validation_probabilities, threshold)
        ),
    }
    if threshold is not None:
        recipe["chosen_threshold"] = threshold
        recipe["at_chosen_threshold"] = operating_point(data.test_labels, test_probabilities, threshold)
    return recipe


def history_csv(history: list[dict[str, float]]) -> bytes:
    """``history.csv``: ``epoch, loss, accuracy``, any other Keras metric, then ``seconds``."""
    frame = pd.DataFrame(history)
    leading = [column for column in ("epoch", "loss", "accuracy") if column in frame.columns]
    rest = [column for column in frame.columns if column not in (*leading, "seconds")]
    frame = frame.loc[:, [*leading, *rest, "seconds"]]
    return frame.to_csv(index=False, lineterminator="\n").encode()


def predictions_csv(data: TrainingData, probabilities: np.ndarray) -> bytes:
    """``predictions.csv``: ``image_id, label, probability`` of every test image, in full precision."""
    frame = pd.DataFrame({"image_id": data.test_ids, "label": data.test_labels, "probability": probabilities})
    # Full precision (round-trips exactly), so the confusion matrix recomputed from this file matches metrics.json.
    return frame.to_csv(index=False, lineterminator="\n").encode()
