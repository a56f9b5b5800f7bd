"""Grad-CAM explanations of a classifier's PNEUMONIA score, drawn over the X-ray.

:func:`grad_cam` computes one heatmap per image at the last convolutional block of a classifier built by
:mod:`cxrcore.models`: the nested base network's output for the six transfer models (``image ->
backbone_preprocessing -> base -> head``), the last convolution before ``Flatten`` for the custom CNN. The
gradient is taken on the PNEUMONIA logit (the pre-sigmoid output, so a saturated probability still has a
gradient), the channel weights are the spatial means of that gradient, and the heatmap is the ReLU of the
channel-weighted feature sum, normalised to ``[0, 1]`` and resized to the images' size. Images go through the
same resize as :func:`cxrcore.inference.predict_pixels`, so the model sees the pixels it is scored on.

:func:`overlay` and :func:`render_explanation` are pure NumPy/Pillow: a jet-like colour ramp alpha-blended over
the grayscale image, and PNG bytes with the probability written in a text band.

Test-set panels (the classifier step's ``gradcam.png``, shown in the report): :func:`select_examples` picks, from
predictions already made, up to ``per_outcome`` images of each outcome (:data:`OUTCOMES`: true/false
positive/negative at a threshold), the most confident first; :func:`render_panel` draws them as one PNG, one row
per outcome, each cell the X-ray beside its overlay with the true label, the probability and the image id.

Nothing here reads or writes files (the callers write the bytes: :mod:`cxrcore.evaluate.predict`,
:mod:`cxrcore.training.classifier_explain`); TensorFlow and Keras are imported on first use of :func:`grad_cam`
or :func:`explained_layer`.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from cxrcore.vocab import CLASS_NAMES

__all__ = [
    "DEFAULT_ALPHA",
    "MIN_RENDER_SIDE",
    "OUTCOMES",
    "PANEL_TILE",
    "Example",
    "cell_positions",
    "explained_layer",
    "grad_cam",
    "jet_colors",
    "overlay",
    "panel_size",
    "render_explanation",
    "render_panel",
    "select_examples",
]

#: Weight of the heatmap colour in :func:`overlay` (the X-ray keeps the rest).
DEFAULT_ALPHA = 0.4
#: Smallest side of the image in a rendered explanation: small inputs are enlarged so the text band fits.
MIN_RENDER_SIDE = 256
_TEXT_BAND_HEIGHT = 22
#: Side of each X-ray and overlay tile in :func:`render_panel` (the paper's 128 px input, shown unscaled).
PANEL_TILE = 128
_PANEL_MARGIN = 8
_PANEL_HEADER = 20
_PANEL_ROW_TITLE = 18
_PANEL_CAPTION = 30
_PANEL_LINE = 13
_CORRECT_COLOR = (140, 230, 140)
_WRONG_COLOR = (255, 130, 130)
_TEXT_COLOR = (255, 255, 255)
#: The outcomes of a test prediction, in the panel's row order: correct ones first.
OUTCOMES: tuple[str, ...] = ("true_positive", "true_negative", "false_positive", "false_negative")
#: ``outcome -> (true label, predicted label)`` (1 = PNEUMONIA).
_OUTCOME_LABELS = {"true_positive": (1, 1), "true_negative": (0, 0), "false_positive": (0, 1), "false_negative": (1, 0)}
_GRAD_CAM_BATCH_SIZE = 16
_SPATIAL_LAYER_NAMES = ("Flatten", "GlobalAveragePooling2D", "GlobalMaxPooling2D")


# ---------------------------------------------------------------------------------------------------- Grad-CAM
def _split_at_last_convolution(model) -> tuple[list, list]:
    """The layers up to and including the last convolutional block, and the layers after it.

    The model must be a chain of layers (every classifier of :mod:`cxrcore.models` is). The block is the last
    nested ``keras.Model`` (a transfer model's base) before the first ``Flatten`` / global pooling layer, else
    the last layer there with a 4-D output that holds a convolution kernel (the custom CNN's ``conv_3``).

    Raises:
        ValueError: No such layer.
    """
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    end = next(
        (index for index, layer in enumerate(layers) if type(layer).__name__ in _SPATIAL_LAYER_NAMES), len(layers)
    )
    candidates = [index for index in range(end) if len(layers[index].output.shape) == 4]
    nested = [index for index in candidates if isinstance(layers[index], keras.Model)]
    convolutions = [index for index in candidates if hasattr(layers[index], "kernel")]
    chosen = nested or convolutions
    if not chosen:
        raise ValueError(
            f"Model {model.name} has no convolutional layer with a 4-D output before its flatten/pooling layer. "
            f"Received: layers={[layer.name for layer in layers]}"
        )
    split = chosen[-1] + 1
    return layers[:split], layers[split:]


def _run_layers(layers: list, inputs, *, logit_at_end: bool = False):
    """Calls ``layers`` in order in inference mode; with ``logit_at_end`` a final sigmoid Dense gives its logit."""
    import keras

    outputs = inputs
    for position, layer in enumerate(layers):
        last = position == len(layers) - 1
        is_sigmoid_dense = isinstance(layer, keras.layers.Dense) and layer.activation is keras.activations.sigmoid
        if last and logit_at_end and is_sigmoid_dense:
            kernel = keras.ops.cast(layer.kernel, "float32")
            bias = keras.ops.cast(layer.bias, "float32")
            return keras.ops.matmul(keras.ops.cast(outputs, "float32"), kernel) + bias
        outputs = layer(outputs, training=False)
    return outputs


def _heatmaps_at_features(model, batch: np.ndarray) -> np.ndarray:
    """Grad-CAM of a float32 ``(n, s, s, channels)`` batch at the feature map's resolution, in ``[0, 1]``."""
    import tensorflow as tf

    features_layers, head_layers = _split_at_last_convolution(model)
    inputs = tf.convert_to_tensor(batch)
    with tf.GradientTape() as tape:
        features = tf.cast(_run_layers(features_layers, inputs), tf.float32)
        tape.watch(features)
        logits = tf.reshape(tf.cast(_run_layers(head_layers, features, logit_at_end=True), tf.float32), (-1,))
    gradients = tape.gradient(logits, features)
    if gradients is None:
        raise ValueError(f"Model {model.name}: its output does not depend on its last convolutional block")
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    cams = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1)).numpy()
    peaks = cams.reshape(len(cams), -1).max(axis=1).reshape(-1, 1, 1)
    return np.divide(cams, peaks, out=np.zeros_like(cams), where=peaks > 0)


def _resize_heatmaps(heatmaps: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of float ``(n, h, w)`` maps to ``(n, height, width)``, clipped to ``[0, 1]``."""
    resized = [
        np.asarray(Image.fromarray(heatmap.astype(np.float32)).resize((width, height), Image.Resampling.BILINEAR))
        for heatmap in heatmaps
    ]
    return np.clip(np.stack(resized), 0.0, 1.0).astype(np.float32)


def grad_cam(model, pixels: np.ndarray, *, batch_size: int = _GRAD_CAM_BATCH_SIZE) -> np.ndarray:
    """Grad-CAM heatmaps of the PNEUMONIA score at a classifier's last convolutional block.

    Args:
        model: A classifier of :mod:`cxrcore.models` (raw ``[0, 255]`` input, ``(batch, 1)`` sigmoid output).
        pixels: uint8 ``(n, height, width)`` grayscale; resized to the model's input size exactly as
            :func:`cxrcore.inference.predict_pixels` does.
        batch_size: Images per gradient pass.

    Returns:
        float32 ``(n, height, width)`` heatmaps in ``[0, 1]`` (the size of ``pixels``); an image whose score no
        feature raises gets an all-zero map.

    Raises:
        ValueError: Bad pixels, a non-square model input, or a model without a convolutional block.
    """
    from cxrcore.inference import model_input_shape

    if pixels.ndim != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"pixels must be uint8 (n, height, width). Received: shape={pixels.shape}, {pixels.dtype}")
    if len(pixels) == 0:
        return np.zeros(pixels.shape, dtype=np.float32)
    side, width, channels = model_input_shape(model)
    model_pixels = pixels
    if side is not None and width is not None and (side, width) != pixels.shape[1:]:
        if side != width:
            raise ValueError(f"Only square model inputs are supported. Received: input {side}x{width}")
        from cxrcore.data.pipeline import resize_images

        model_pixels = resize_images(pixels, int(side))
    heatmaps = []
    for start in range(0, len(model_pixels), batch_size):
        batch = model_pixels[start : start + batch_size].astype(np.float32)[..., None]
        if channels == 3:
            batch = np.repeat(batch, 3, axis=-1)
        heatmaps.append(_heatmaps_at_features(model, batch))
    return _resize_heatmaps(np.concatenate(heatmaps), *pixels.shape[1:])


def explained_layer(model) -> str:
    """The name of the layer whose output :func:`grad_cam` explains (a transfer model's base, the custom CNN's last
    convolution).

    Raises:
        ValueError: The model has no convolutional block before its flatten/pooling layer.
    """
    features_layers, _head_layers = _split_at_last_convolution(model)
    return str(features_layers[-1].name)


# ---------------------------------------------------------------------------------------------------- drawing
def jet_colors(values: np.ndarray) -> np.ndarray:
    """A jet-like colour ramp (blue -> cyan -> yellow -> red) of values in ``[0, 1]``.

    Args:
        values: float array of any shape.

    Returns:
        float32 RGB in ``[0, 1]``, shape ``values.shape + (3,)``.
    """
    scaled = 4.0 * np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)
    red = np.clip(1.5 - np.abs(scaled - 3.0), 0.0, 1.0)
    green = np.clip(1.5 - np.abs(scaled - 2.0), 0.0, 1.0)
    blue = np.clip(1.5 - np.abs(scaled - 1.0), 0.0, 1.0)
    return np.stack([red, green, blue], axis=-1).astype(np.float32)


def overlay(pixels: np.ndarray, heatmap: np.ndarray, *, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """The heatmap's colours alpha-blended over one grayscale X-ray.

    Args:
        pixels: uint8 ``(height, width)`` grayscale.
        heatmap: float ``(height, width)`` in ``[0, 1]``.
        alpha: Weight of the colour, in ``[0, 1]``.

    Returns:
        uint8 ``(height, width, 3)`` RGB.

    Raises:
        ValueError: Mismatched shapes or an alpha outside ``[0, 1]``.
    """
    if pixels.ndim != 2 or heatmap.shape != pixels.shape:
        raise ValueError(f"pixels and heatmap must be the same (h, w). Received: {pixels.shape}, {heatmap.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]. Received: alpha={alpha}")
    gray = np.repeat(pixels.astype(np.float32)[..., None] / 255.0, 3, axis=-1)
    blended = (1.0 - alpha) * gray + alpha * jet_colors(heatmap)
    return np.clip(np.rint(blended * 255.0), 0, 255).astype(np.uint8)


def render_explanation(pixels: np.ndarray, heatmap: np.ndarray, probability: float) -> bytes:
    """PNG bytes of the overlay, enlarged to at least :data:`MIN_RENDER_SIDE` px, over a probability band.

    Args:
        pixels: uint8 ``(height, width)`` grayscale, as the model saw it.
        heatmap: float ``(height, width)`` in ``[0, 1]`` (from :func:`grad_cam`).
        probability: The probability of PNEUMONIA to write.

    Returns:
        The PNG file's bytes.
    """
    image = Image.fromarray(overlay(pixels, heatmap))
    scale = max(1, -(-MIN_RENDER_SIDE // min(image.size)))
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (image.width, image.height + _TEXT_BAND_HEIGHT), (0, 0, 0))
    canvas.paste(image, (0, 0))
    ImageDraw.Draw(canvas).text(
        (4, image.height + 5), f"P(PNEUMONIA) = {probability:.4f}  Grad-CAM", fill=(255, 255, 255)
    )
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------- test panels
@dataclasses.dataclass(frozen=True)
class Example:
    """One test image chosen for a Grad-CAM panel.

    Attributes:
        index: Its position in the arrays the selection was made from.
        image_id: The dataset's image id.
        label: The true label (1 = PNEUMONIA).
        probability: The probability of PNEUMONIA the model gave it.
        outcome: One of :data:`OUTCOMES`.
    """

    index: int
    image_id: str
    label: int
    probability: float
    outcome: str


def select_examples(
    image_ids: Sequence[str],
    labels: np.ndarray,
    probabilities: np.ndarray,
    *,
    per_outcome: int,
    threshold: float = 0.5,
) -> list[Example]:
    """Up to ``per_outcome`` images of each outcome, the most confident first (deterministic, pure).

    An image is predicted PNEUMONIA when its probability is at least ``threshold``. Most confident: the highest
    probability among images predicted PNEUMONIA (true and false positives), the lowest among images predicted
    NORMAL (true and false negatives); ties go to the smaller image id.

    Args:
        image_ids: One id per image.
        labels: int ``(n,)`` true labels, 0 or 1.
        probabilities: float ``(n,)`` probabilities of PNEUMONIA, in ``[0, 1]``.
        per_outcome: Images per outcome, at least 0.
        threshold: Decision threshold, in ``(0, 1)``.

    Returns:
        The examples in :data:`OUTCOMES` order, each outcome's most confident first (fewer where an outcome has
        fewer images).

    Raises:
        ValueError: Mismatched lengths, labels other than 0/1, probabilities outside ``[0, 1]``, a negative
            ``per_outcome`` or a threshold outside ``(0, 1)``.
    """
    ids = np.asarray([str(image_id) for image_id in image_ids], dtype=str)
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if not len(ids) == len(labels) == len(probabilities):
        raise ValueError(
            "image_ids, labels and probabilities must have one entry per image. "
            f"Received: lengths={len(ids)}, {len(labels)}, {len(probabilities)}"
        )
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 or 1. Received: labels={sorted(set(labels.tolist()))}")
    if not (np.isfinite(probabilities).all() and ((probabilities >= 0) & (probabilities <= 1)).all()):
        raise ValueError("probabilities must be finite and in [0, 1]. Received: values outside that range")
    if not isinstance(per_outcome, int) or per_outcome < 0:
        raise ValueError(f"per_outcome must be a non-negative integer. Received: per_outcome={per_outcome!r}")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1). Received: threshold={threshold}")
    predicted = (probabilities >= threshold).astype(int)
    examples = []
    for outcome in OUTCOMES:
        truth, guess = _OUTCOME_LABELS[outcome]
        members = np.flatnonzero((labels == truth) & (predicted == guess))
        confidence = probabilities[members] if guess == 1 else -probabilities[members]
        order = np.lexsort((ids[members], -confidence))  # the last key sorts first
        examples += [
            Example(int(index), str(ids[index]), int(labels[index]), float(probabilities[index]), outcome)
            for index in members[order[:per_outcome]]
        ]
    return examples


def cell_positions(examples: Sequence[Example]) -> list[tuple[int, int]]:
    """``(row, column)`` of each example in :func:`render_panel`: the row of its outcome, then its rank there."""
    seen = dict.fromkeys(OUTCOMES, 0)
    positions = []
    for example in examples:
        if example.outcome not in seen:
            raise ValueError(f"outcome must be one of {OUTCOMES}. Received: outcome={example.outcome!r}")
        positions.append((OUTCOMES.index(example.outcome), seen[example.outcome]))
        seen[example.outcome] += 1
    return positions


def panel_size(per_outcome: int, tile: int = PANEL_TILE) -> tuple[int, int]:
    """``(width, height)`` in pixels of a :func:`render_panel` image.

    Raises:
        ValueError: ``per_outcome`` below 1 or ``tile`` below 32.
    """
    if not isinstance(per_outcome, int) or per_outcome < 1:
        raise ValueError(f"per_outcome must be a positive integer. Received: per_outcome={per_outcome!r}")
    if not isinstance(tile, int) or tile < 32:
        raise ValueError(f"tile must be an integer of at least 32. Received: tile={tile!r}")
    width = _PANEL_MARGIN + per_outcome * (2 * tile + _PANEL_MARGIN)
    height = _PANEL_HEADER + len(OUTCOMES) * (_PANEL_ROW_TITLE + tile + _PANEL_CAPTION)
    return width, height


def _fit_text(draw: ImageDraw.ImageDraw, text: str, width: float) -> str:
    """``text``, cut with an ellipsis where it is wider than ``width`` pixels."""
    if draw.textlength(text) <= width:
        return text
    while text and draw.textlength(text + "...") > width:
        text = text[:-1]
    return text + "..."


def _row_title(outcome: str) -> str:
    truth, guess = _OUTCOME_LABELS[outcome]
    return f"{outcome.replace('_', ' ').upper()}: true {CLASS_NAMES[truth]}, predicted {CLASS_NAMES[guess]}"


def render_panel(
    pixels: np.ndarray,
    heatmaps: np.ndarray,
    examples: Sequence[Example],
    *,
    per_outcome: int,
    threshold: float = 0.5,
    tile: int = PANEL_TILE,
) -> bytes:
    """PNG bytes of one panel: a row per outcome (:data:`OUTCOMES`), each cell the X-ray beside its Grad-CAM overlay.

    Every row has a title (the outcome, true and predicted class); under each cell are the true class, the
    probability of PNEUMONIA and the image id. A row without examples says so. Tiles are ``tile`` px squares
    (bilinear), the panel is :func:`panel_size` large, cells sit at :func:`cell_positions`.

    Args:
        pixels: uint8 ``(n, height, width)``: the examples' images, as the model saw them, in ``examples`` order.
        heatmaps: float ``(n, height, width)`` in ``[0, 1]`` (from :func:`grad_cam`).
        examples: The examples (from :func:`select_examples`), at most ``per_outcome`` of each outcome.
        per_outcome: Columns of the panel.
        threshold: The decision threshold the outcomes were computed at (written in the header).
        tile: Side of each tile.

    Returns:
        The PNG file's bytes.

    Raises:
        ValueError: Mismatched shapes or counts, or an outcome with more than ``per_outcome`` examples.
    """
    width, height = panel_size(per_outcome, tile)
    if pixels.ndim != 3 or pixels.dtype != np.uint8 or heatmaps.shape != pixels.shape or len(pixels) != len(examples):
        raise ValueError(
            "pixels (uint8) and heatmaps must be (n, height, width) with one image per example. "
            f"Received: pixels={pixels.shape} {pixels.dtype}, heatmaps={heatmaps.shape}, examples={len(examples)}"
        )
    positions = cell_positions(examples)
    if any(column >= per_outcome for _row, column in positions):
        raise ValueError(f"An outcome has more than per_outcome examples. Received: per_outcome={per_outcome}")
    canvas = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    header = f"Grad-CAM of P(PNEUMONIA) on test images | X-ray, overlay | predicted PNEUMONIA at P >= {threshold:g}"
    draw.text((_PANEL_MARGIN, 4), _fit_text(draw, header, width - 2 * _PANEL_MARGIN), fill=_TEXT_COLOR)
    row_height = _PANEL_ROW_TITLE + tile + _PANEL_CAPTION
    for row, outcome in enumerate(OUTCOMES):
        top = _PANEL_HEADER + row * row_height
        color = _CORRECT_COLOR if outcome.startswith("true") else _WRONG_COLOR
        draw.text((_PANEL_MARGIN, top + 3), _fit_text(draw, _row_title(outcome), width - 2 * _PANEL_MARGIN), fill=color)
        if row not in {position[0] for position in positions}:
            draw.text((_PANEL_MARGIN, top + _PANEL_ROW_TITLE + tile // 2), "none among the test images", fill=color)
    for index, (example, (row, column)) in enumerate(zip(examples, positions)):
        left = _PANEL_MARGIN + column * (2 * tile + _PANEL_MARGIN)
        top = _PANEL_HEADER + row * row_height + _PANEL_ROW_TITLE
        xray = Image.fromarray(pixels[index]).convert("RGB").resize((tile, tile), Image.Resampling.BILINEAR)
        heat = Image.fromarray(overlay(pixels[index], heatmaps[index])).resize((tile, tile), Image.Resampling.BILINEAR)
        canvas.paste(xray, (left, top))
        canvas.paste(heat, (left + tile, top))
        lines = (
            f"true {CLASS_NAMES[example.label]}  P(PNEUMONIA) = {example.probability:.3f}",
            f"image {example.image_id}",
        )
        for number, line in enumerate(lines):
            draw.text((left, top + tile + 3 + number * _PANEL_LINE), _fit_text(draw, line, 2 * tile), fill=_TEXT_COLOR)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
