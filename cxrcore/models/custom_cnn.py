"""The paper's custom CNN classifier (Table 1, "Custom CNN" column).

Architecture (Keras default `padding="valid"` for every convolution and pooling;
Table 1's "Padding: same" row sits under the DCGAN columns)::

    [Rescaling(1/255)]                      # optional, on by default (see below)
    Conv2D(32, k3, relu) -> Conv2D(64, k3, relu) -> MaxPool2D(2)
    -> Conv2D(128, k3, relu) -> MaxPool2D(3) -> Flatten
    -> Dense(120, relu) -> Dense(120, relu) -> Dense(60, relu)
    -> Dropout(0.2) -> Dense(1, sigmoid)

Parameter count. The convolution and Dense parameters that do not depend on the
input size total 115,209 (3-channel input; 114,633 for 1 channel) and the
Flatten -> Dense(120) kernel adds `120 * F`, where `F = 128 * s * s` is the
flattened size. At the paper's 128 px input (3 channels) `s = 20`,
`F = 51,200` and the network has **6,259,209** trainable parameters (valid
padding; 6,888,969 with "same" padding, `s = 21`).

The paper reports 1,177,801 (`PAPER_PARAMS`). No reasonable reading of Table 1
reproduces it: `1,177,801 - 115,209 = 1,062,592` is not a multiple of 120 (nor
is `1,177,801 - 114,633` for grayscale input), so no flattened size, input size,
padding or pooling choice gives that count with Dense(120) after Flatten. An
exhaustive search (1 or 3 input channels, input sizes 28-299 px, valid or same
padding for each convolution and pooling layer, strides 1-3 for the second
pooling layer) found no match; the nearest counts are 1,098,249 (`s = 8`, e.g.
a 56-61 px input, valid padding) and 1,359,369 (`s = 9`, e.g. a 62-67 px
input, valid padding). The paper's figure is most likely from a different
input size or layer list than Table 1 shows; this module implements Table 1
as written.

Input contract: with `include_rescaling=True` (default, used by
`cxrcore.models.transfer.build_classifier`) the model takes raw pixels in
[0, 255] and a serializable `keras.layers.Rescaling(1/255)` maps them to the
[0, 1] range the Table 1 layers were trained on, exactly like the transfer
models embed their own preprocessing. With `include_rescaling=False` the model
takes [0, 1] images (use `preprocess` on [0, 255] data).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import layers, ops

from cxrcore.vocab import PAPER_CUSTOM_CNN_PARAMS

__all__ = [
    "CUSTOM_CNN_INPUT_RANGE",
    "CUSTOM_CNN_MIN_INPUT_SIZE",
    "PAPER_PARAMS",
    "build_custom_cnn",
    "custom_cnn_trainable_params",
    "preprocess",
]

#: Trainable parameters the paper reports for its custom CNN (Table 1).
PAPER_PARAMS = PAPER_CUSTOM_CNN_PARAMS
#: Value range the Table 1 layers see (after the built-in Rescaling).
CUSTOM_CNN_INPUT_RANGE = (0.0, 1.0)
#: Smallest input size for which every valid-padded layer has a non-empty output.
CUSTOM_CNN_MIN_INPUT_SIZE = 14


def _flatten_side(input_size: int) -> int:
    side = input_size - 2  # Conv2D(32, 3)
    side -= 2  # Conv2D(64, 3)
    side = (side - 2) // 2 + 1 if side >= 2 else 0  # MaxPool2D(2)
    side -= 2  # Conv2D(128, 3)
    return (side - 3) // 3 + 1 if side >= 3 else 0  # MaxPool2D(3)


def custom_cnn_trainable_params(input_size: int = 128, channels: int = 3) -> int:
    """Closed-form trainable parameter count of `build_custom_cnn`.

    Args:
        input_size: Height/width of the (square) input.
        channels: Input channels.

    Returns:
        The number of trainable parameters (6,259,209 at 128 px, 3 channels).
    """
    side = _flatten_side(input_size)
    flattened = 128 * side * side
    convolutions = (9 * channels * 32 + 32) + (9 * 32 * 64 + 64) + (9 * 64 * 128 + 128)
    dense = (flattened * 120 + 120) + (120 * 120 + 120) + (120 * 60 + 60) + (60 + 1)
    return convolutions + dense


def preprocess(images: Any) -> Any:
    """Maps raw pixels in [0, 255] to float32 in [0, 1].

    Args:
        images: NumPy array or tensor of pixel values in [0, 255].

    Returns:
        float32 values divided by 255 (NumPy in, NumPy out; tensors stay tensors).
    """
    if isinstance(images, (np.ndarray, list, tuple, int, float)):
        return np.asarray(images, dtype=np.float32) / np.float32(255.0)
    return ops.divide(ops.cast(images, "float32"), 255.0)


def build_custom_cnn(
    input_size: int = 128,
    channels: int = 3,
    *,
    dropout_rate: float = 0.2,
    include_rescaling: bool = True,
) -> keras.Model:
    """Builds the Table 1 custom CNN binary classifier.

    Args:
        input_size: Height/width of the square input (128 in the paper);
            at least `CUSTOM_CNN_MIN_INPUT_SIZE`.
        channels: Input channels (3: grayscale X-rays repeated to RGB).
        dropout_rate: Dropout before the output layer (0.2 in the paper).
        include_rescaling: Prepend `Rescaling(1/255)` so the model takes raw
            [0, 255] pixels (the classifier contract). `False` takes [0, 1].

    Returns:
        A functional `keras.Model` named `"custom_cnn"` with a `(batch, 1)`
        float32 sigmoid output (probability of pneumonia).

    Raises:
        ValueError: If an argument is out of range.
    """
    if not isinstance(input_size, int) or input_size < CUSTOM_CNN_MIN_INPUT_SIZE:
        raise ValueError(
            f"`input_size` must be an integer >= {CUSTOM_CNN_MIN_INPUT_SIZE}. "
            f"Received: input_size={input_size}"
        )
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 or 3. Received: channels={channels}")
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"`dropout_rate` must be in [0, 1). Received: dropout_rate={dropout_rate}")

    inputs = keras.Input(shape=(input_size, input_size, channels), name="image")
    x = inputs
    if include_rescaling:
        x = layers.Rescaling(1.0 / 255.0, name="rescale_to_unit")(x)
    x = layers.Conv2D(32, 3, activation="relu", name="conv_1")(x)
    x = layers.Conv2D(64, 3, activation="relu", name="conv_2")(x)
    x = layers.MaxPooling2D(2, name="max_pool_1")(x)
    x = layers.Conv2D(128, 3, activation="relu", name="conv_3")(x)
    x = layers.MaxPooling2D(3, name="max_pool_2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(120, activation="relu", name="dense_1")(x)
    x = layers.Dense(120, activation="relu", name="dense_2")(x)
    x = layers.Dense(60, activation="relu", name="dense_3")(x)
    x = layers.Dropout(dropout_rate, name="dropout")(x)
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name="probability")(x)
    return keras.Model(inputs, outputs, name="custom_cnn")
