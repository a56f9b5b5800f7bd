"""Grad-CAM explanations of a classifier's PNEUMONIA score, drawn over the X-ray.

:func:`grad_cam` computes one heatmap per image at the last convolutional block of a classifier built by
:mod:`cxrcore.models`: the nested base network's output for the six transfer models (``image ->
backbone_preprocessing -> base -> head``), the last convolution before ``Flatten`` for the custom CNN. The
gradient is taken on the PNEUMONIA logit (the pre-sigmoid output, so a saturated probability still has a
gradient), the channel weights are the spatial means of that gradient, and the heatmap is the ReLU of the
channel-weighted feature sum, normalised to ``[0, 1]`` and resized to the images' size. Images go through the
same resize as :func:`cxrcore.inference.predict_pixels`, so the model sees the pixels it is scored on.

:func:`overlay` and :func:`render_explanation` are pure NumPy/Pillow: a jet-like colour ramp alpha-blended over
the grayscale image, and PNG bytes with the probability written in a text band. Nothing here reads or writes
files (the caller writes the bytes, :mod:`cxrcore.evaluate.predict`); TensorFlow and Keras are imported on
first use of :func:`grad_cam`.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["DEFAULT_ALPHA", "MIN_RENDER_SIDE", "grad_cam", "jet_colors", "overlay", "render_explanation"]

#: Weight of the heatmap colour in :func:`overlay` (the X-ray keeps the rest).
DEFAULT_ALPHA = 0.4
#: Smallest side of the image in a rendered explanation: small inputs are enlarged so the text band fits.
MIN_RENDER_SIDE = 256
_TEXT_BAND_HEIGHT = 22
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
