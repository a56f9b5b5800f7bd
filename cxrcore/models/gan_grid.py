"""Sample grids of a DCGAN: uint8 conversion, tiling, PNG encoding and the per-epoch grid callback (no I/O).

Split from :mod:`cxrcore.models.dcgan` (which re-exports every name); :class:`GANSampleGrid` hands PNG bytes to a
caller-supplied sink, so the model side never writes files.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops
from PIL import Image

__all__ = ["GANSampleGrid", "encode_png", "make_grid", "to_uint8"]


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Converts float images in [0, 1] to uint8 in [0, 255] (uint8 passes through).

    Args:
        images: Array of any shape; floats are clipped to [0, 1] then rounded.

    Returns:
        uint8 array of the same shape.
    """
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.round(np.clip(images.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def make_grid(images: np.ndarray, columns: int, *, padding: int = 2, pad_value: int = 0) -> np.ndarray:
    """Tiles a batch of images into one RGB grid image.

    Args:
        images: `(n, height, width)`, `(n, height, width, 1)` or
            `(n, height, width, 3)`; float in [0, 1] or uint8.
        columns: Images per row; the last row is padded with blank cells.
        padding: Pixels of `pad_value` between and around cells.
        pad_value: uint8 value of the padding and blank cells.

    Returns:
        uint8 array of shape `(rows * (height + padding) + padding,
        columns * (width + padding) + padding, 3)`.

    Raises:
        ValueError: On an empty batch, a bad shape or a bad `columns`/`padding`.
    """
    images = to_uint8(images)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.shape[0] == 0:
        raise ValueError(
            "`images` must be a non-empty batch shaped (n, h, w), (n, h, w, 1) or "
            f"(n, h, w, 3). Received: images.shape={images.shape}"
        )
    if not isinstance(columns, int) or columns < 1:
        raise ValueError(f"`columns` must be a positive integer. Received: columns={columns}")
    if padding < 0:
        raise ValueError(f"`padding` must be >= 0. Received: padding={padding}")
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    count, height, width, _ = images.shape
    columns = min(columns, count)
    rows = -(-count // columns)
    grid = np.full(
        (rows * (height + padding) + padding, columns * (width + padding) + padding, 3),
        pad_value,
        dtype=np.uint8,
    )
    for index in range(count):
        row, column = divmod(index, columns)
        top = padding + row * (height + padding)
        left = padding + column * (width + padding)
        grid[top : top + height, left : left + width] = images[index]
    return grid


def encode_png(array: np.ndarray) -> bytes:
    """Encodes a uint8 image as PNG bytes (PIL, in memory).

    Args:
        array: uint8 array shaped `(h, w)`, `(h, w, 1)`, `(h, w, 3)` or `(h, w, 4)`.

    Returns:
        The PNG file's bytes.

    Raises:
        ValueError: If the array is not uint8 or has an unsupported shape.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"`array` must be uint8. Received: array.dtype={array.dtype}")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))):
        raise ValueError(
            f"`array` must be shaped (h, w), (h, w, 1), (h, w, 3) or (h, w, 4). Received: array.shape={array.shape}"
        )
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return buffer.getvalue()


class GANSampleGrid(keras.callbacks.Callback):
    """Renders a grid of generated images from FIXED noise after each epoch.

    The callback never does I/O: it passes `(epoch, png_bytes)` to `sink`, where
    `epoch` is Keras' 0-based epoch index, so the job decides where the PNG goes.

    Args:
        sink: Callable receiving `(epoch, grid_png_bytes)`.
        num_images: Images in the grid.
        columns: Images per grid row.
        seed: Seed of the fixed noise (NumPy `default_rng`).
        every_n_epochs: Render only when `(epoch + 1) % every_n_epochs == 0`.
        latent_dim: Noise size; defaults to the trained model's `latent_dim`.
        generator: Generator to sample; defaults to the trained model's
            `generator` attribute (i.e. the `DCGAN` being fitted).
    """

    def __init__(
        self,
        sink: Callable[[int, bytes], Any],
        *,
        num_images: int = 16,
        columns: int = 4,
        seed: int = 0,
        every_n_epochs: int = 1,
        latent_dim: int | None = None,
        generator: keras.Model | None = None,
    ) -> None:
        super().__init__()
        if not callable(sink):
            raise ValueError(f"`sink` must be callable. Received: sink={sink!r}")
        if num_images < 1:
            raise ValueError(f"`num_images` must be >= 1. Received: num_images={num_images}")
        if every_n_epochs < 1:
            raise ValueError(f"`every_n_epochs` must be >= 1. Received: every_n_epochs={every_n_epochs}")
        self.sink = sink
        self.num_images = num_images
        self.columns = columns
        self.seed = seed
        self.every_n_epochs = every_n_epochs
        self.latent_dim = latent_dim
        self._generator = generator
        self.noise: np.ndarray | None = None

    def _resolve_generator(self) -> keras.Model:
        generator = self._generator
        if generator is None:
            generator = getattr(self.model, "generator", None)
        if generator is None:
            raise ValueError(
                "GANSampleGrid needs a `generator` argument or a model with a `generator` "
                f"attribute. Received: model={self.model!r}"
            )
        return generator

    def fixed_noise(self) -> np.ndarray:
        """Returns the fixed noise batch, creating it on first use."""
        if self.noise is None:
            latent_dim = self.latent_dim or self._resolve_generator().input_shape[-1]
            rng = np.random.default_rng(self.seed)
            self.noise = rng.standard_normal((self.num_images, latent_dim)).astype(np.float32)
        return self.noise

    def render(self) -> np.ndarray:
        """Returns the current grid as a uint8 `(H, W, 3)` array.

        Without a `generator` argument the fitted model's generator draws it, with its moving-average weights
        when the model keeps them (`DCGAN.averaged_generator`), as the published generator will.
        """
        noise = self.fixed_noise()
        lend = getattr(self.model, "averaged_generator", None) if self._generator is None else None
        if lend is None:
            images = ops.convert_to_numpy(self._resolve_generator()(noise, training=False))
        else:
            with lend() as generator:
                images = ops.convert_to_numpy(generator(noise, training=False))
        return make_grid(images, self.columns)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if (epoch + 1) % self.every_n_epochs != 0:
            return
        self.sink(epoch, encode_png(self.render()))
