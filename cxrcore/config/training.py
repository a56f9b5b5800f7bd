"""Settings of the training jobs: ``cxr-gan-train``, ``cxr-synthesize``, ``cxr-train-classifier``."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cxrcore.config.base import ClassName, ModelName, RunSettings
from cxrcore.vocab import (
    BACKBONE_NAMES,
    CONDITIONS,
    GAN_AUGMENT_POLICIES,
    GAN_PUBLISH_RULES,
    MODEL_NAMES,
    OPTIMIZERS,
    PAPER_CLASSIFIER_EPOCHS,
    PAPER_GAN_EPOCHS,
    PAPER_GAN_IMAGE_SIZE,
    PAPER_GENERATED_IMAGES,
    PAPER_IMAGE_SIZE,
    PAPER_KEEP_FRACTION,
    PAPER_LATENT_DIM,
    PAPER_LEARNING_RATE,
    PROTOCOLS,
    SELECTION_STRATEGIES,
)

#: The ``inception`` setting of cxr-gan-train (its quality measurements) and cxr-synthesize (the kept set).
InceptionChoice = Annotated[
    str,
    Field(
        description="InceptionV3 KID/FID beside the offline KID: auto (when the Keras cache holds Keras' ImageNet "
        "InceptionV3 file; else recorded as skipped), imagenet (required: exit 1 before any work when it is "
        "missing), off, or a path / s3:// URI of an InceptionV3 include_top=False weights file.",
        json_schema_extra={"identity": "resolved"},  # what scored: the weights' hash, or why nothing did
    ),
]


#: The key of a per-model learning-rate object that applies to the models it does not name.
DEFAULT_LEARNING_RATE_KEY = "default"


def learning_rate_for_model(value: Any, model: str) -> float:
    """The learning rate of one classifier from a ``learning_rate`` setting that may name one per model.

    The one check of the setting: ``cxr-train-classifier`` resolves its own rate with it, and ``cxr matrix`` runs it
    for every listed model before anything trains.

    Args:
        value: A positive number (or its text); or a mapping, or the text of a JSON object, from model names (and
            optionally ``"default"``) to positive numbers.
        model: The classifier being trained (a name of ``MODEL_NAMES``).

    Returns:
        The number itself; or the mapping's entry for ``model``, else its ``"default"`` one.

    Raises:
        ValueError: A value that is not a positive finite number or a mapping of them; text starting with ``{``
            that is not a JSON object; a key that is neither a model name nor ``"default"``; no entry for
            ``model`` and no default.
    """
    rates = value
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            rates = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"learning_rate is not a JSON object ({exc.msg}). Received: learning_rate={value!r}"
            ) from None
    if not isinstance(rates, dict):
        rate = _positive_number(value)
        if rate is None:
            raise ValueError(
                f"learning_rate must be a positive number or a JSON object of them. Received: learning_rate={value!r}"
            )
        return rate
    unknown = sorted(str(key) for key in rates if key not in (*MODEL_NAMES, DEFAULT_LEARNING_RATE_KEY))
    if unknown:
        raise ValueError(
            f"learning_rate names no such model: {', '.join(unknown)} (models: {', '.join(MODEL_NAMES)}; "
            f"or {DEFAULT_LEARNING_RATE_KEY!r}). Received: learning_rate={value!r}"
        )
    for key, rate in rates.items():
        # JSON numbers only: an entry's text ("1e-4") is refused, as a typo inside the object would be.
        if isinstance(rate, str) or _positive_number(rate) is None:
            raise ValueError(f"learning_rate of {key} must be a positive number. Received: learning_rate={value!r}")
    if model in rates:
        return float(rates[model])
    if DEFAULT_LEARNING_RATE_KEY in rates:
        return float(rates[DEFAULT_LEARNING_RATE_KEY])
    raise ValueError(
        f"learning_rate has no entry for {model} and no {DEFAULT_LEARNING_RATE_KEY!r} one. "
        f"Received: learning_rate={value!r}"
    )


def _positive_number(value: Any) -> float | None:
    """``value`` as a float when it is a positive finite number or its text, else ``None`` (booleans included)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


class GanTrainSettings(RunSettings):
    """``cxr-gan-train``: one DCGAN for one class (Table 1), checkpointed and resumable."""

    class_name: ClassName = Field(description="NORMAL or PNEUMONIA.", json_schema_extra={"identity": True})
    epochs: int | None = Field(
        default=None,
        ge=1,
        description=f"Default: the paper's {PAPER_GAN_EPOCHS['PNEUMONIA']} PNEUMONIA / {PAPER_GAN_EPOCHS['NORMAL']} "
        "NORMAL.",
        json_schema_extra={"identity": True},
    )
    image_size: int = Field(
        default=PAPER_GAN_IMAGE_SIZE,
        ge=16,
        le=256,
        description=f"GAN resolution (paper: {PAPER_GAN_IMAGE_SIZE}).",
        json_schema_extra={"identity": True},
    )
    latent_dim: int = Field(default=PAPER_LATENT_DIM, ge=1, json_schema_extra={"identity": True})
    width_multiplier: float = Field(
        default=1.0,
        gt=0.0,
        le=4.0,
        description="Filter scale (paper: 1.0).",
        json_schema_extra={"identity": True},
    )
    discriminator_width_multiplier: float | None = Field(
        default=None,
        gt=0.0,
        le=4.0,
        description="Filter scale of the discriminator alone; default `width_multiplier` (Table 1's networks share "
        "one scale). A small generator learns faster against a full-width discriminator (README \"GAN quality\").",
        json_schema_extra={"identity": True},
    )
    batch_size: int = Field(default=32, ge=1, json_schema_extra={"identity": True})
    learning_rate: float = Field(default=PAPER_LEARNING_RATE, gt=0.0, json_schema_extra={"identity": True})
    steps: int | None = Field(
        default=None,
        ge=1,
        description="Step budget: train ceil(steps / steps per epoch) epochs instead of `epochs` (CPU profiles).",
        json_schema_extra={"identity": True},
    )
    beta_1: float = Field(
        default=0.9,
        ge=0.0,
        lt=1.0,
        description="Adam beta_1 of both networks (paper / Keras-io: 0.9; DCGAN paper: 0.5).",
        json_schema_extra={"identity": True},
    )
    d_learning_rate: float | None = Field(
        default=None,
        gt=0.0,
        description="Discriminator learning rate (TTUR); default `learning_rate`.",
        json_schema_extra={"identity": True},
    )
    g_learning_rate: float | None = Field(
        default=None,
        gt=0.0,
        description="Generator learning rate (TTUR); default `learning_rate`.",
        json_schema_extra={"identity": True},
    )
    label_smoothing: float = Field(
        default=0.0,
        ge=0.0,
        lt=0.5,
        description="One-sided label smoothing of the real targets (paper: 0).",
        json_schema_extra={"identity": True},
    )
    diff_augment: str = Field(
        default="none",
        description="DiffAugment policies for the discriminator, comma-separated from "
        f"{','.join(GAN_AUGMENT_POLICIES)}, or 'none' (paper).",
        json_schema_extra={"identity": True},
    )
    instance_noise: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Std of Gaussian instance noise on discriminator inputs, annealed to 0 over training (paper: 0).",
        json_schema_extra={"identity": True},
    )
    mode_seeking_weight: float = Field(
        default=0.0,
        ge=0.0,
        description="Weight of MSGAN's mode-seeking term in the generator's loss (distinct latents, distinct "
        "images; pairs within each batch, so a batch of at least 2 per replica). 0 (paper): none.",
        json_schema_extra={"identity": True},
    )
    mode_seeking_detail_weight: float = Field(
        default=0.0,
        ge=0.0,
        description="Weight of the mode-seeking term computed on the images' detail band (image minus its "
        "Gaussian blur, std 3/64 of the side), so distinct latents also differ in fine structure such as where "
        "the ribs fall; a batch of at least 2 per replica. 0 (paper): none.",
        json_schema_extra={"identity": True},
    )
    detail_mean_weight: float = Field(
        default=0.0,
        ge=0.0,
        description="Weight of a term matching the mean detail band of each generated batch to the real batch's "
        "(an unbiased linear MMD on image minus Gaussian blur, std 3/64 of the side, relative to the real detail "
        "energy), so samples stop repeating one rib cage in one place; a batch of at least 2 per replica. 0 "
        "(paper): none.",
        json_schema_extra={"identity": True},
    )
    generator_ema: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Momentum of an exponential moving average of the generator's weights (e.g. 0.99), kept by "
        "its Adam; the published generator, its samples and the quality measurements use the average. 0 (paper): "
        "none.",
        json_schema_extra={"identity": True},
    )
    d_clipnorm: float = Field(
        default=0.0,
        ge=0.0,
        description="Spike guard: the discriminator's Adam clips its gradient's global norm to this (e.g. 10, above "
        "every step of a healthy run, so only spikes are cut); 0 (paper): no clipping.",
        json_schema_extra={"identity": True},
    )
    g_clipnorm: float = Field(
        default=0.0,
        ge=0.0,
        description="Spike guard of the generator's Adam, as d_clipnorm (e.g. 5); 0 (paper): no clipping.",
        json_schema_extra={"identity": True},
    )
    validation_fraction: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="The classifiers' validation_fraction: the GAN leaves out the validation patients they carve "
        "(same carve, seeded with validation_seed), so no synthetic image is drawn from them; 0: trains on the "
        "whole training split.",
        json_schema_extra={"identity": True},
    )
    validation_seed: int = Field(
        default=0,
        ge=0,
        description="The classifiers' validation_seed (the seed of their validation carve).",
        json_schema_extra={"identity": True},
    )
    quality_every: int = Field(
        default=500,
        ge=1,
        description="Steps between quality measurements (KID, two-sample test, sample statistics); the measured "
        "generators are the ones `publish` chooses from.",
        json_schema_extra={"identity": True},
    )
    publish: Literal[GAN_PUBLISH_RULES] = Field(
        default="last",
        description="Which measured generator (and its discriminator) to publish: last (paper), best (lowest "
        "KID), or guarded (the last unless it broke down late, then the lowest-KID one before it).",
        json_schema_extra={"identity": True},
    )
    inception: InceptionChoice = "auto"
    checkpoint_every: int = Field(
        default=5,
        ge=1,
        description="Epochs between checkpoints in the store.",
        json_schema_extra={"identity": False},
    )
    max_steps_per_epoch: int | None = Field(
        default=None,
        ge=1,
        description="Cap steps (smoke tests).",
        json_schema_extra={"identity": True},
    )
    mixed_precision: bool = Field(
        default=False,
        description="mixed_float16 (GPU only).",
        json_schema_extra={"identity": True},
    )
    xla: bool = Field(
        default=False,
        description="jit_compile the train step (GPU).",
        json_schema_extra={"identity": True},
    )

    @field_validator("diff_augment")
    @classmethod
    def _check_diff_augment(cls, value: str) -> str:
        names = [] if value.strip().lower() in ("", "none") else [part.strip() for part in value.split(",")]
        unknown = [name for name in names if name not in GAN_AUGMENT_POLICIES]
        if unknown:
            raise ValueError(
                f"unknown DiffAugment policy {unknown[0]!r}; use 'none' or a comma-separated subset of "
                f"{','.join(GAN_AUGMENT_POLICIES)}. Received: diff_augment={value!r}"
            )
        return ",".join(name for name in GAN_AUGMENT_POLICIES if name in names) or "none"

    def resolved_epochs(self) -> int | None:
        """The epoch count: ``None`` under a step budget (epochs follow from it), else the flag or the paper's."""
        if self.steps is not None:
            return None
        return self.epochs if self.epochs is not None else PAPER_GAN_EPOCHS[self.class_name]

    def epochs_for(self, steps_per_epoch: int) -> int:
        """The epochs to train at ``steps_per_epoch``: enough to cover ``steps``, else :meth:`resolved_epochs`."""
        if self.steps is not None:
            return max(1, -(-self.steps // steps_per_epoch))
        return self.resolved_epochs()

    def discriminator_width(self) -> float:
        """The discriminator's filter scale: its own setting, else ``width_multiplier``."""
        return self.discriminator_width_multiplier or self.width_multiplier

    def learning_rates(self) -> tuple[float, float]:
        """``(discriminator, generator)`` learning rates: each its own setting, else ``learning_rate``."""
        return (self.d_learning_rate or self.learning_rate, self.g_learning_rate or self.learning_rate)

    def augment_policies(self) -> tuple[str, ...]:
        """The DiffAugment policy names (empty for 'none')."""
        return () if self.diff_augment == "none" else tuple(self.diff_augment.split(","))


class SynthesizeSettings(RunSettings):
    """``cxr-synthesize``: generate, upsample, select and check synthetic images of one class."""

    class_name: ClassName = Field(description="NORMAL or PNEUMONIA.", json_schema_extra={"identity": True})
    num_images: int | None = Field(
        default=None,
        ge=1,
        description=f"Default: the paper's {PAPER_GENERATED_IMAGES['PNEUMONIA']} / {PAPER_GENERATED_IMAGES['NORMAL']}.",
        json_schema_extra={"identity": True},
    )
    output_size: int = Field(
        default=PAPER_IMAGE_SIZE,
        ge=16,
        le=1024,
        description=f"Upsampled size (paper: {PAPER_GAN_IMAGE_SIZE} -> {PAPER_IMAGE_SIZE}).",
        json_schema_extra={"identity": True},
    )
    selection: Literal[SELECTION_STRATEGIES] = Field(
        default=SELECTION_STRATEGIES[0], json_schema_extra={"identity": True}
    )
    keep_fraction: float = Field(
        default=PAPER_KEEP_FRACTION,
        gt=0.0,
        le=1.0,
        description=f"Share kept (paper: ~{PAPER_KEEP_FRACTION:.0%}).",
        json_schema_extra={"identity": True},
    )
    confidence_model: str | None = Field(
        default=None,
        description="Classifier model URI for selection=confidence (s3://... or path).",
        json_schema_extra={"identity": "resolved"},  # the model file's sha256
    )
    memorization_threshold: float = Field(
        default=0.95,
        gt=0.0,
        le=1.0,
        description="SSIM to the nearest real image above which a sample is flagged.",
        json_schema_extra={"identity": True},
    )
    drop_memorized: bool = Field(
        default=False,
        description="Drop flagged (memorized) images from the kept set instead of only reporting them.",
        json_schema_extra={"identity": True},
    )
    flagged_gan: Literal["refuse", "use"] = Field(
        default="refuse",
        description="What to do when cxr-gan-train flagged the GAN as failed (gan.json quality): refuse (exit 1) "
        "or use its images anyway (recorded in selection.json and shown in the report).",
        json_schema_extra={"identity": False},
    )
    inception: InceptionChoice = "auto"
    batch_size: int = Field(default=64, ge=1, json_schema_extra={"identity": False})

    def resolved_num_images(self) -> int:
        """The number of images to generate: the flag, else the paper's per-class value."""
        return self.num_images if self.num_images is not None else PAPER_GENERATED_IMAGES[self.class_name]


class TrainClassifierSettings(RunSettings):
    """``cxr-train-classifier``: one model x one condition x one seed."""

    model: ModelName = Field(
        description=f"{MODEL_NAMES[0]} or a backbone: " + ", ".join(BACKBONE_NAMES) + ".",
        json_schema_extra={"identity": True},
    )
    condition: Literal[CONDITIONS] = Field(
        description="baseline: real only; augmented: + synthetic.",
        json_schema_extra={"identity": True},
    )
    epochs: int = Field(
        default=PAPER_CLASSIFIER_EPOCHS,
        ge=1,
        description=f"Paper: {PAPER_CLASSIFIER_EPOCHS}.",
        json_schema_extra={"identity": True},
    )
    batch_size: int = Field(default=32, ge=1, json_schema_extra={"identity": True})
    image_size: int = Field(
        default=PAPER_IMAGE_SIZE,
        ge=32,
        le=512,
        description=f"Paper: {PAPER_IMAGE_SIZE}.",
        json_schema_extra={"identity": True},
    )
    learning_rate: float = Field(
        default=PAPER_LEARNING_RATE,
        gt=0.0,
        description='A number, or a JSON object with one per model and an optional "default" '
        '({"vgg16": 5e-5, "default": 1e-4}): one workflow parameter serves every classifier, and a backbone '
        "trained from scratch may need another rate than the custom CNN. Paper: 1e-4 for every model.",
        json_schema_extra={"identity": True},  # the rate in effect for this model (the other entries do not count)
    )
    optimizer: Literal[OPTIMIZERS] = Field(
        default="paper",
        description="paper: Adam, but RMSprop for InceptionV3 and SGD for ResNet50.",
        json_schema_extra={"identity": True},
    )
    weights: str = Field(
        default="imagenet",
        description="Backbone weights: imagenet (Keras cache), none, a path or an s3:// URI.",
        json_schema_extra={"identity": True},
    )
    augment: bool = Field(
        default=False,
        description="Mild geometric/intensity augmentation of every training image (real and synthetic).",
        json_schema_extra={"identity": True},
    )
    protocol: Literal[PROTOCOLS] = Field(
        default="clean",
        description="clean: synthetic images join the training split only; paper-merge: merged before splitting "
        "as the paper did (contaminated test set, labelled so in the report).",
        json_schema_extra={"identity": True},
    )
    checkpoint_every: int = Field(
        default=1,
        ge=1,
        description="Epochs between checkpoints.",
        json_schema_extra={"identity": False},
    )
    max_steps_per_epoch: int | None = Field(
        default=None,
        ge=1,
        description="Cap steps (smoke tests).",
        json_schema_extra={"identity": True},
    )
    mixed_precision: bool = Field(default=False, json_schema_extra={"identity": True})
    class_weight: Literal["none", "balanced"] = Field(
        default="none",
        description="none: unweighted loss, as the paper; balanced: weight each class by n / (2 * n_class).",
        json_schema_extra={"identity": True},
    )
    validation_fraction: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Share of the training patients held out as a validation split (grouped by patient, "
        "stratified; never synthetic, never a test patient) that picks the best epoch and the decision threshold; "
        "0: none, as the paper.",
        json_schema_extra={"identity": True},
    )
    validation_seed: int = Field(
        default=0,
        ge=0,
        description="Seed of the validation carve, the same for every classifier seed (the GANs leave the same "
        "patients out with their own validation_seed).",
        json_schema_extra={"identity": True},
    )
    early_stopping_patience: int = Field(
        default=0,
        ge=0,
        description="Stop after this many epochs without a better selection_metric (the best epoch is restored "
        "whenever there is a validation split); 0: train every epoch, as the paper.",
        json_schema_extra={"identity": True},
    )
    selection_metric: Literal["val_loss", "val_auc"] = Field(
        default="val_loss",
        description="What picks the best epoch, stops early and drives plateau: val_loss (lowest) or val_auc "
        "(highest; ties: lower val_loss).",
        json_schema_extra={"identity": True},
    )
    lr_schedule: Literal["constant", "cosine", "plateau"] = Field(
        default="constant",
        description="constant: as the paper; cosine: decay to 1% over the epochs; plateau: halve after 2 epochs "
        "without a better selection_metric (needs a validation split).",
        json_schema_extra={"identity": True},
    )
    target_sensitivity: float = Field(
        default=0.95,
        gt=0.0,
        le=1.0,
        description="With a validation split, metrics.json also reports the test metrics at the highest threshold "
        "whose validation sensitivity reaches this (metrics at 0.5 keep their names).",
        json_schema_extra={"identity": True},
    )
    # Not identity: the panel explains the model, it does not change it, its metrics or its predictions. An output
    # already committed is kept as it is (a re-run with another value changes nothing).
    explain_examples: int = Field(
        default=2,
        ge=0,
        le=8,
        description="Grad-CAM examples per outcome (true/false positive/negative, the most confident test images) "
        "committed as gradcam.png and gradcam.json and shown in the report; 0: none.",
        json_schema_extra={"identity": False},
    )

    @field_validator("learning_rate", mode="before")
    @classmethod
    def _learning_rate_of_this_model(cls, value: Any, info: ValidationInfo) -> Any:
        # ``model`` is declared first, so it is validated by now (absent when it was itself invalid).
        model = info.data.get("model")
        return value if model is None else learning_rate_for_model(value, model)

    @model_validator(mode="after")
    def _recipe_needs_validation(self) -> TrainClassifierSettings:
        needs = {
            "early_stopping_patience": self.early_stopping_patience > 0,
            "lr_schedule": self.lr_schedule == "plateau",
        }
        for name, needed in needs.items():
            if needed and self.validation_fraction == 0.0:
                raise ValueError(
                    f"{name} needs a validation split (validation_fraction > 0). "
                    f"Received: {name}={getattr(self, name)!r}, validation_fraction={self.validation_fraction}"
                )
        return self

    def resolved_weights(self) -> str:
        """The weights setting in effect: ``"none"`` for the custom CNN, which has no pretrained weights."""
        return "none" if self.model == MODEL_NAMES[0] else self.weights
