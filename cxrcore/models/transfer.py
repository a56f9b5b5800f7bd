"""Transfer-learning classifiers (paper Table 1) and the classifier registry.

Input contract (every classifier in `ALL_MODELS`):
    A classifier takes a float batch `(batch, size, size, 3)` of RAW pixels in
    [0, 255] (grayscale X-rays repeated to 3 channels, see `grayscale_to_rgb`)
    and returns `(batch, 1)` float32 sigmoid probabilities of pneumonia. Each
    model carries its own input preprocessing as its first layer, so the data
    pipeline never needs to know which model it feeds:

    * transfer models: a serializable `BackbonePreprocessing` layer applying that
      backbone's OWN `keras.applications.<family>.preprocess_input` (never a
      shared one), then the ImageNet base (`include_top=False`);
    * the custom CNN: a serializable `keras.layers.Rescaling(1/255)`.

    `classifier_input_range(name)` is therefore `(0.0, 255.0)` for every name,
    and `network_input_range(name)` gives what the network sees after its
    built-in preprocessing (`BackboneSpec.input_range`, or [0, 1] for the
    custom CNN). Feeding [0, 1] images to a network that expects [0, 255]
    ImageNet statistics (caffe-style ResNet50, EfficientNet's built-in
    rescaling) is the likely cause of the paper's 73% (majority-class)
    ResNet50/EfficientNetB0 results; the embedded preprocessing rules it out.

Backbones (`BACKBONES`), with the range seen by the base for [0, 255] input:

    ==============  ========  ===================================  =========  ========
    key             mode      range after preprocessing            optimizer  min size
    ==============  ========  ===================================  =========  ========
    inceptionv3     tf        [-1, 1]                              rmsprop    75
    resnet50        caffe     RGB->BGR minus ImageNet mean         sgd        32
                              [-123.68, 151.061]
    efficientnetb0  identity  [0, 255] (rescaling is inside base)  adam       32
    vgg16           caffe     [-123.68, 151.061]                   adam       32
    densenet201     torch     (x/255 - mean) / std                 adam       32
                              [-2.1179, 2.6400]
    xception        tf        [-1, 1]                              adam       71
    ==============  ========  ===================================  =========  ========

Transfer model (`build_transfer_model`)::

    Input(size, size, 3) in [0, 255] -> BackbonePreprocessing(name)
    -> base(include_top=False, trainable=trainable_base, called with training=False)
    -> Conv2D(256, k3, relu, padding="same") -> Flatten
    -> Dense(1024, relu) -> Dense(512, relu) -> Dropout(0.2) -> Dense(1, sigmoid)

The head convolution uses `padding="same"` because at the paper's 128 px
InceptionV3's base output is only 2x2 (1x1 at 75 px) and a valid 3x3
convolution would not fit. The base is called with `training=False` so
its BatchNormalization layers stay in inference mode even when
`trainable_base=True` (the Keras fine-tuning recipe).

From scratch (`from_scratch=True`, only with `weights=None`): a frozen base of
random weights is random features, on which the head collapses to one class,
so the base is trainable and called without `training=False`: every weight
trains end to end and BatchNormalization normalises with batch statistics
while training (moving statistics at inference). The architecture and its
parameter count are the same; only which parameters train differs.

A base without BatchNormalization (VGG16) is also re-initialised when trained
from scratch (`initialise_plain_base`): Keras' default Glorot-uniform kernels,
meant to be overwritten by ImageNet weights, halve the signal's variance at
every ReLU layer, so after VGG16's 13 convolutions the output is ~500 times
smaller than its input, every probability sits at 0.5 and training stalls at
the loss of a coin (0.693) for epochs. He-normal kernels (He et al. 2015, the
initialisation that trained VGG from scratch) keep the variance, and the first
convolution's kernels are divided by the half-width of the backbone's input
range, so a base fed caffe-style [-123.68, 151.06] pixels starts like one fed
unit-scale input instead of saturating the head. Bases with BatchNormalization
normalise after every convolution and keep Keras' initialisation; their
BatchNormalization layers get momentum 0.9 instead of Keras' 0.99
(`FROM_SCRATCH_BATCH_NORM_MOMENTUM`, PyTorch's default): after a short budget
(the demo trains ~130 steps) a 0.99 moving average still holds a quarter of its
initial statistics and lags weights that move fast, so inference-mode
predictions land on one side of 0.5 even where the batch statistics rank the
images (measured on the demo's EfficientNetB0: all test images one class at
inference, half and half with batch statistics).

Weights (`weights=`):
    * `None`: random initialisation (tests, smoke profiles).
    * `"imagenet"`: passed through to `keras.applications`, which loads the file
      from the Keras cache (`$KERAS_HOME/models`, default `~/.keras/models`) and
      downloads it only when absent. Container images pre-bake these files
      (`python -m cxrcore.models.weights_cache`, see that module) and the
      training job checks the cache before it starts, so jobs never download.
    * a local `.h5` / `.weights.h5` file of the BASE network (e.g. Keras'
      `*_notop.h5` ImageNet files, or `base.save_weights(...)` output): the base
      is built with `weights=None` and the file is loaded into it; a file that
      does not match raises `ValueError` naming the file. `s3://` URIs are
      resolved to local files by the job layer, never here.
      EfficientNetB0 note: Keras only adds its ImageNet stddev correction layer
      when `weights="imagenet"`; when a local file carries the ImageNet
      normalization statistics (variance equal to the ImageNet stddev, Keras'
      storage convention) the variance is squared after loading so the base
      computes `(x / 255 - mean) / std` exactly as with `weights="imagenet"`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from typing import Any

import h5py
import keras
import numpy as np
from keras import layers, ops

from cxrcore.models.custom_cnn import (
    CUSTOM_CNN_INPUT_RANGE,
    CUSTOM_CNN_MIN_INPUT_SIZE,
    build_custom_cnn,
)
from cxrcore.vocab import MODEL_NAMES, PAPER_LEARNING_RATE

__all__ = [
    "ALL_MODELS",
    "BACKBONES",
    "BackbonePreprocessing",
    "BackboneSpec",
    "FROM_SCRATCH_BATCH_NORM_MOMENTUM",
    "GrayscaleToRGB",
    "PAPER_LEARNING_RATE",
    "build_classifier",
    "build_transfer_model",
    "classifier_input_range",
    "classifier_min_input_size",
    "get_backbone",
    "get_base_model",
    "grayscale_to_rgb",
    "initialise_plain_base",
    "load_base_weights",
    "model_summary_counts",
    "network_input_range",
    "paper_optimizer",
]

#: Momentum of a from-scratch base's BatchNormalization moving statistics (Keras' default 0.99 is for long runs).
FROM_SCRATCH_BATCH_NORM_MOMENTUM = 0.9

_CAFFE_RANGE = (-123.68, 255.0 - 103.939)
_TORCH_RANGE = ((0.0 - 0.485) / 0.229, (1.0 - 0.406) / 0.225)

_IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
_IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """One transfer-learning backbone.

    Attributes:
        name: Registry key (lower case), e.g. `"resnet50"`.
        constructor: `keras.applications` constructor of the network.
        preprocess_input: The backbone family's own
            `keras.applications.<family>.preprocess_input`.
        input_range: `(low, high)` bounds of what the base network receives
            AFTER `preprocess_input`, for raw input in [0, 255].
        paper_optimizer: Optimizer the paper used: `"adam"`, `"rmsprop"` or
            `"sgd"`.
        min_input_size: Smallest height/width `keras.applications` accepts with
            `include_top=False`.
    """

    name: str
    constructor: Callable[..., keras.Model]
    preprocess_input: Callable[..., Any]
    input_range: tuple[float, float]
    paper_optimizer: str
    min_input_size: int


BACKBONES: dict[str, BackboneSpec] = {
    "inceptionv3": BackboneSpec(
        name="inceptionv3",
        constructor=keras.applications.InceptionV3,
        preprocess_input=keras.applications.inception_v3.preprocess_input,
        input_range=(-1.0, 1.0),
        paper_optimizer="rmsprop",
        min_input_size=75,
    ),
    "resnet50": BackboneSpec(
        name="resnet50",
        constructor=keras.applications.ResNet50,
        preprocess_input=keras.applications.resnet50.preprocess_input,
        input_range=_CAFFE_RANGE,
        paper_optimizer="sgd",
        min_input_size=32,
    ),
    "efficientnetb0": BackboneSpec(
        name="efficientnetb0",
        constructor=keras.applications.EfficientNetB0,
        preprocess_input=keras.applications.efficientnet.preprocess_input,
        input_range=(0.0, 255.0),
        paper_optimizer="adam",
        min_input_size=32,
    ),
    "vgg16": BackboneSpec(
        name="vgg16",
        constructor=keras.applications.VGG16,
        preprocess_input=keras.applications.vgg16.preprocess_input,
        input_range=_CAFFE_RANGE,
        paper_optimizer="adam",
        min_input_size=32,
    ),
    "densenet201": BackboneSpec(
        name="densenet201",
        constructor=keras.applications.DenseNet201,
        preprocess_input=keras.applications.densenet.preprocess_input,
        input_range=_TORCH_RANGE,
        paper_optimizer="adam",
        min_input_size=32,
    ),
    "xception": BackboneSpec(
        name="xception",
        constructor=keras.applications.Xception,
        preprocess_input=keras.applications.xception.preprocess_input,
        input_range=(-1.0, 1.0),
        paper_optimizer="adam",
        min_input_size=71,
    ),
}

#: Every classifier name, in the paper's order (:data:`cxrcore.vocab.MODEL_NAMES`; ``BACKBONES`` has one
#: spec for each name after the custom CNN).
ALL_MODELS: list[str] = list(MODEL_NAMES)


def get_backbone(name: str) -> BackboneSpec:
    """Returns the `BackboneSpec` registered under `name`.

    Raises:
        ValueError: If `name` is not a key of `BACKBONES`.
    """
    try:
        return BACKBONES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown backbone; expected one of {sorted(BACKBONES)}. Received: name={name!r}"
        ) from None


def _validate_model_name(name: str) -> None:
    if name not in ALL_MODELS:
        raise ValueError(f"Unknown classifier; expected one of {ALL_MODELS}. Received: name={name!r}")


@keras.saving.register_keras_serializable(package="cxrcore")
class BackbonePreprocessing(layers.Layer):
    """Applies a backbone's own `preprocess_input` inside the model.

    Serializable: the config stores only the backbone key, and the function is
    looked up in `BACKBONES` on load. Runs in float32 (also under mixed
    precision) so the ImageNet mean subtraction is exact; the base casts
    afterwards.

    Args:
        backbone: Key of `BACKBONES`.
        **kwargs: Standard `keras.layers.Layer` arguments.
    """

    def __init__(self, backbone: str, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.backbone = get_backbone(backbone).name

    def call(self, inputs: Any) -> Any:
        return get_backbone(self.backbone).preprocess_input(ops.cast(inputs, self.compute_dtype))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["backbone"] = self.backbone
        return config


@keras.saving.register_keras_serializable(package="cxrcore")
class GrayscaleToRGB(layers.Layer):
    """Repeats a single-channel image batch to 3 channels (3 channels pass through)."""

    def call(self, inputs: Any) -> Any:
        return grayscale_to_rgb(inputs)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:-1], 3)


def grayscale_to_rgb(images: Any) -> Any:
    """Repeats the channel axis of grayscale images to RGB.

    Args:
        images: `(..., height, width, 1)` or `(..., height, width, 3)` array or
            tensor (channels last). NumPy in gives NumPy out.

    Returns:
        The images with 3 identical channels (3-channel input is returned as is).

    Raises:
        ValueError: If the last axis is neither 1 nor 3.
    """
    channels = images.shape[-1]
    if channels == 3:
        return images
    if channels != 1:
        raise ValueError(
            "`images` must have 1 or 3 channels (last axis). "
            f"Received: images.shape={tuple(images.shape)}"
        )
    if isinstance(images, np.ndarray):
        return np.repeat(images, 3, axis=-1)
    return ops.repeat(images, 3, axis=-1)


def _fix_efficientnet_normalization(base: keras.Model) -> None:
    """Squares ImageNet stddev stored as variance (Keras' EfficientNet convention)."""
    for layer in base.layers:
        variance_variable = getattr(layer, "adapt_variance", None)
        if not isinstance(layer, layers.Normalization) or variance_variable is None:
            continue
        mean = ops.convert_to_numpy(layer.adapt_mean)
        variance = ops.convert_to_numpy(variance_variable)
        stores_stddev = np.allclose(mean, _IMAGENET_MEAN_RGB, atol=1e-4) and np.allclose(
            variance, _IMAGENET_STDDEV_RGB, atol=1e-4
        )
        if stores_stddev:
            variance_variable.assign(np.square(variance))
            layer.finalize_state()


def _check_weights_file_shapes(base: keras.Model, path: str) -> None:
    """Compares the arrays of a `.weights.h5` file with the base's variables.

    Keras only warns (and keeps the random initialisation) for parts of a
    `.weights.h5` file it cannot match, so the shapes are checked up front.
    """
    shapes: list[tuple[int, ...]] = []
    try:
        with h5py.File(path, "r") as file:
            file.visititems(
                lambda _, item: (
                    shapes.append(tuple(item.shape)) if isinstance(item, h5py.Dataset) else None
                )
            )
    except OSError as error:
        raise ValueError(
            f"Weights file '{path}' is not a readable HDF5 file: {error}. Received: weights={path!r}"
        ) from error
    expected = sorted(tuple(weight.shape) for weight in base.weights)
    if sorted(shapes) != expected:
        raise ValueError(
            f"Weights file '{path}' does not match the base network '{base.name}': it holds "
            f"{len(shapes)} arrays ({sum(math.prod(shape) for shape in shapes)} values) but the "
            f"network has {len(expected)} variables ({sum(math.prod(shape) for shape in expected)} "
            f"values). Received: weights={path!r}"
        )


def load_base_weights(
    base: keras.Model, path: str | os.PathLike[str], *, backbone: str | None = None
) -> None:
    """Loads a local weights file into a base network.

    Args:
        base: The `include_top=False` base network.
        path: Local `.h5` (legacy Keras, e.g. the `*_notop.h5` ImageNet files) or
            `.weights.h5` file of that base network.
        backbone: Key of `BACKBONES`; enables backbone-specific fix-ups (the
            EfficientNet ImageNet normalization, see the module docstring).

    Raises:
        ValueError: If the path is remote, missing, has the wrong suffix, or
            its contents do not match the base network. The message names the
            file.
    """
    path_string = os.fspath(path)
    if "://" in path_string:
        raise ValueError(
            "Weights must be a local file; remote URIs are resolved by the job layer. "
            f"Received: weights={path_string!r}"
        )
    if not path_string.endswith((".h5", ".hdf5")):
        raise ValueError(
            "Weights file must end in `.h5`, `.weights.h5` or `.hdf5`. "
            f"Received: weights={path_string!r}"
        )
    if not os.path.isfile(path_string):
        raise ValueError(
            f"Weights file '{path_string}' does not exist. Received: weights={path_string!r}"
        )
    if path_string.endswith(".weights.h5"):
        _check_weights_file_shapes(base, path_string)
    try:
        base.load_weights(path_string)
    except Exception as error:  # Keras raises ValueError, KeyError or OSError here.
        raise ValueError(
            f"Weights file '{path_string}' does not match the base network "
            f"'{base.name}': {error}. Received: weights={path_string!r}"
        ) from error
    if backbone == "efficientnetb0":
        _fix_efficientnet_normalization(base)


def _validate_weights(weights: Any) -> None:
    if weights is None or weights == "imagenet":
        return
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            "`weights` must be None, 'imagenet' or a local weights file path. "
            f"Received: weights={weights!r}"
        )


def _validate_dropout(dropout_rate: float) -> None:
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"`dropout_rate` must be in [0, 1). Received: dropout_rate={dropout_rate}")


def initialise_plain_base(base: keras.Model, spec: BackboneSpec) -> int:
    """Re-draws the kernels of a base without BatchNormalization for training from scratch.

    Every `Conv2D` kernel gets He-normal values (variance `2 / fan_in`, drawn from Keras' seeded
    generator, so `keras.utils.set_random_seed` fixes them); the first convolution's kernel is then divided by
    the half-width of `spec.input_range`, the scale of what the base receives. Biases stay zero. A base with
    any BatchNormalization layer is left as Keras built it (see the module docstring).

    Args:
        base: A base network built with `weights=None`.
        spec: Its backbone spec (for the input range).

    Returns:
        The number of kernels re-drawn (0 for a base with BatchNormalization).
    """
    if any(isinstance(layer, layers.BatchNormalization) for layer in base.layers):
        return 0
    convolutions = [layer for layer in base.layers if isinstance(layer, layers.Conv2D)]
    input_scale = (spec.input_range[1] - spec.input_range[0]) / 2.0
    for index, layer in enumerate(convolutions):
        # One initializer per layer: an initializer instance repeats its values for kernels of the same shape.
        kernel = keras.initializers.HeNormal()(tuple(layer.kernel.shape), dtype=layer.kernel.dtype)
        layer.kernel.assign(kernel / input_scale if index == 0 else kernel)
    return len(convolutions)


def build_transfer_model(
    name: str,
    *,
    input_size: int = 128,
    weights: str | os.PathLike[str] | None = None,
    dropout_rate: float = 0.2,
    trainable_base: bool = False,
    from_scratch: bool = False,
) -> keras.Model:
    """Builds a Table 1 transfer-learning classifier.

    Args:
        name: Key of `BACKBONES`.
        input_size: Height/width of the square input (128 in the paper); at
            least the backbone's `min_input_size`.
        weights: `None`, `"imagenet"`, or a local `.h5`/`.weights.h5` file of
            the base network (see the module docstring).
        dropout_rate: Dropout before the output layer (0.2 in the paper).
        trainable_base: Unfreeze the base (the paper freezes it); BatchNorm
            stays in inference mode (fine-tuning).
        from_scratch: Train the base end to end from random weights, its
            BatchNorm in training mode (module docstring); needs
            `weights=None`.

    Returns:
        A functional `keras.Model` named `"<name>_transfer"` taking raw
        [0, 255] RGB pixels and returning `(batch, 1)` float32 probabilities.
        Its layers are `image` (input), `backbone_preprocessing`, the base
        (see `get_base_model`) and the head.

    Raises:
        ValueError: On an unknown name, a too small input, bad weights or
            dropout rate, or `from_scratch` with weights.
    """
    spec = get_backbone(name)
    if from_scratch and weights is not None:
        raise ValueError(
            "`from_scratch=True` trains the base from random weights; it takes no weights. "
            f"Received: weights={weights!r}"
        )
    if not isinstance(input_size, int) or input_size < spec.min_input_size:
        raise ValueError(
            f"`input_size` for {name} must be an integer >= {spec.min_input_size}. "
            f"Received: input_size={input_size}"
        )
    _validate_weights(weights)
    _validate_dropout(dropout_rate)

    inputs = keras.Input(shape=(input_size, input_size, 3), name="image")
    x = BackbonePreprocessing(spec.name, name="backbone_preprocessing")(inputs)
    base = spec.constructor(
        include_top=False,
        weights="imagenet" if weights == "imagenet" else None,
        input_shape=(input_size, input_size, 3),
    )
    if weights is not None and weights != "imagenet":
        load_base_weights(base, weights, backbone=spec.name)
    if from_scratch:
        initialise_plain_base(base, spec)
        for layer in base.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = FROM_SCRATCH_BATCH_NORM_MOMENTUM
    base.trainable = trainable_base or from_scratch
    x = base(x) if from_scratch else base(x, training=False)
    x = layers.Conv2D(256, 3, padding="same", activation="relu", name="head_conv")(x)
    x = layers.Flatten(name="head_flatten")(x)
    x = layers.Dense(1024, activation="relu", name="head_dense_1")(x)
    x = layers.Dense(512, activation="relu", name="head_dense_2")(x)
    x = layers.Dropout(dropout_rate, name="head_dropout")(x)
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name="probability")(x)
    return keras.Model(inputs, outputs, name=f"{spec.name}_transfer")


def get_base_model(model: keras.Model) -> keras.Model:
    """Returns the nested base network of a model from `build_transfer_model`.

    Raises:
        ValueError: If the model holds no nested base network.
    """
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            return layer
    raise ValueError(f"Model has no nested base network. Received: model.name={model.name!r}")


def paper_optimizer(name: str, learning_rate: float = PAPER_LEARNING_RATE) -> keras.optimizers.Optimizer:
    """Returns a fresh instance of the optimizer the paper used for a classifier.

    Section 4.2: every model uses Adam at 1e-4 except InceptionV3 (RMSprop) and
    ResNet50 (SGD). Optimizer hyperparameters other than the learning rate are
    not given in the paper and keep the Keras defaults (plain SGD, no momentum).

    Args:
        name: A name of `ALL_MODELS`.
        learning_rate: Learning rate (1e-4 in the paper).

    Returns:
        `keras.optimizers.Adam`, `RMSprop` or `SGD`.

    Raises:
        ValueError: On an unknown name or a non-positive learning rate.
    """
    _validate_model_name(name)
    if not learning_rate > 0:
        raise ValueError(f"`learning_rate` must be > 0. Received: learning_rate={learning_rate}")
    kind = "adam" if name == "custom_cnn" else BACKBONES[name].paper_optimizer
    if kind == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=learning_rate)
    if kind == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate)
    return keras.optimizers.Adam(learning_rate=learning_rate)


def classifier_input_range(name: str) -> tuple[float, float]:
    """Returns the pixel range a classifier from `build_classifier` takes.

    Every classifier embeds its preprocessing, so this is `(0.0, 255.0)` for
    all names; see `network_input_range` for the post-preprocessing range.

    Raises:
        ValueError: On an unknown name.
    """
    _validate_model_name(name)
    return (0.0, 255.0)


def network_input_range(name: str) -> tuple[float, float]:
    """Returns the range the network sees after its built-in preprocessing.

    `(0.0, 1.0)` for the custom CNN (after its Rescaling), otherwise the
    backbone's `BackboneSpec.input_range`.

    Raises:
        ValueError: On an unknown name.
    """
    _validate_model_name(name)
    if name == "custom_cnn":
        return CUSTOM_CNN_INPUT_RANGE
    return BACKBONES[name].input_range


def classifier_min_input_size(name: str) -> int:
    """Returns the smallest input size `build_classifier` accepts for `name`.

    Raises:
        ValueError: On an unknown name.
    """
    _validate_model_name(name)
    if name == "custom_cnn":
        return CUSTOM_CNN_MIN_INPUT_SIZE
    return BACKBONES[name].min_input_size


def build_classifier(
    name: str,
    *,
    input_size: int,
    weights: str | os.PathLike[str] | None = None,
    dropout_rate: float = 0.2,
    from_scratch: bool = False,
) -> keras.Model:
    """Builds any classifier of `ALL_MODELS` with the [0, 255] input contract.

    Args:
        name: `"custom_cnn"` or a key of `BACKBONES`.
        input_size: Height/width of the square RGB input.
        weights: Base-network weights for transfer models (see
            `build_transfer_model`); must be `None` for the custom CNN.
        dropout_rate: Dropout before the output layer.
        from_scratch: For a backbone without weights: train it end to end
            (see `build_transfer_model`); the custom CNN always trains end
            to end and ignores it.

    Returns:
        A `keras.Model` taking `(batch, input_size, input_size, 3)` pixels in
        [0, 255] and returning `(batch, 1)` float32 probabilities.

    Raises:
        ValueError: On an unknown name or invalid arguments.
    """
    _validate_model_name(name)
    if name == "custom_cnn":
        if weights is not None:
            raise ValueError(f"The custom CNN has no pretrained weights. Received: weights={weights!r}")
        return build_custom_cnn(input_size, 3, dropout_rate=dropout_rate, include_rescaling=True)
    return build_transfer_model(
        name, input_size=input_size, weights=weights, dropout_rate=dropout_rate, from_scratch=from_scratch
    )


def model_summary_counts(model: keras.Model) -> tuple[int, int]:
    """Returns `(total, trainable)` parameter counts of a model.

    Args:
        model: A built Keras model.

    Returns:
        Total parameters (trainable plus non-trainable, e.g. BatchNorm moving
        statistics) and trainable parameters.
    """
    total = sum(math.prod(weight.shape) for weight in model.weights)
    trainable = sum(math.prod(weight.shape) for weight in model.trainable_weights)
    return int(total), int(trainable)
