"""The one inference path: fetch and load a trained classifier, and score uint8 grayscale pixels with it.

Every caller that runs a classifier goes through here (docs/architecture.md#inference): ``cxr evaluate`` and
``cxr predict`` (:mod:`cxrcore.evaluate`), ``cxr promote`` (:mod:`cxrcore.steps.promote`), the confidence
selection of ``cxr-synthesize`` (:mod:`cxrcore.steps.synthesize`) and the test-set scoring of
``cxr-train-classifier``. :func:`predict_pixels` resizes with the training pipeline's Pillow resize
(:func:`cxrcore.data.pipeline.resize_images`) when the model's input size differs, repeats the gray channel to
the model's channels and feeds raw ``[0, 255]`` pixels (every classifier carries its own preprocessing), so one
trained model sees the same pixels wherever it is scored.

Models are read from a local path, a ``file://`` URI or ``s3://``; a folder or prefix holding ``model.keras`` is
checked against its ``_SUCCESS`` marker's sha256 when it is a committed output. TensorFlow and Keras are
imported on first use, so this module loads in images without them.
"""

from __future__ import annotations

import os
import tempfile
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cxrcore.logging import get_logger
from cxrcore.storage import (
    MARKER_NAME,
    Marker,
    ObjectNotFoundError,
    join_key,
    open_store,
    parse_s3_uri,
    redact_uri,
    sha256_file,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "MODEL_FILE",
    "UncommittedModelError",
    "fetch_file",
    "fetch_model",
    "load_model_file",
    "load_model_uri",
    "model_input_shape",
    "predict_pixels",
    "resolve_image_size",
]

log = get_logger(__name__)

#: File name of a classifier inside its output prefix (``runs/.../seed-<seed>/model.keras``).
MODEL_FILE = "model.keras"
#: Images per forward pass unless the caller says otherwise.
DEFAULT_BATCH_SIZE = 32


class UncommittedModelError(ValueError):
    """A folder or prefix holds a model but no ``_SUCCESS`` marker: its job never finished (or is rewriting it)."""


def _refuse_uncommitted(shown: str, *, allow_uncommitted: bool) -> None:
    """Raises :class:`UncommittedModelError` naming ``shown`` unless ``allow_uncommitted`` (then warns)."""
    if allow_uncommitted:
        log.warning("model_prefix_uncommitted", uri=shown, allowed=True)
        return
    raise UncommittedModelError(
        f"{shown} has no {MARKER_NAME} marker: its model is from an unfinished or failed job (or one being "
        f"rewritten) and is not used. Pass --allow-uncommitted (allow_uncommitted=True) to load it anyway, for "
        f"forensics. Received: uri={shown!r}"
    )


# ---------------------------------------------------------------------------------------------------- fetching
def fetch_file(uri: str, dest_dir: str | os.PathLike[str], *, s3: Mapping[str, Any] | None = None) -> Path:
    """Makes the file a URI names available locally.

    Args:
        uri: ``s3://bucket/key``, ``file:///abs/path`` or a local path.
        dest_dir: Directory that receives a downloaded copy (S3 only; local files are used in place).
        s3: Options of :class:`cxrcore.storage.S3Store` (endpoint, addressing style, ...).

    Returns:
        The local path of the file (its base name is kept, so suffix checks still work).

    Raises:
        FileNotFoundError: The object or file does not exist; the message names the URI.
        ValueError: The URI is malformed.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError(f"A file URI must be a non-empty string. Received: uri={uri!r}")
    if uri.startswith("s3://"):
        bucket, key = parse_s3_uri(uri)
        if not key:
            raise ValueError(f"An s3:// file URI must name an object, not a bucket. Received: uri={redact_uri(uri)!r}")
        store = open_store(f"s3://{bucket}", s3=s3)
        target = Path(dest_dir) / Path(key).name
        try:
            return store.get_file(key, target)
        except ObjectNotFoundError:
            raise FileNotFoundError(f"No object at {redact_uri(uri)}. Received: uri={redact_uri(uri)!r}") from None
    path = _local_path(uri)
    if not path.is_file():
        raise FileNotFoundError(f"No file at {path}. Received: uri={uri!r}")
    return path


def _local_path(uri: str) -> Path:
    if uri.startswith("file://"):
        parsed = urllib.parse.urlsplit(uri)
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"file:// URIs must name a local path. Received: uri={uri!r}")
        return Path(urllib.parse.unquote(parsed.path))
    if "://" in uri:
        raise ValueError(f"Unsupported URI scheme: use s3://, file:// or a path. Received: uri={redact_uri(uri)!r}")
    return Path(uri).expanduser()


def _verified_local_model(folder: Path, *, allow_uncommitted: bool = False) -> Path:
    """``folder/model.keras``, checked against ``folder/_SUCCESS``; a folder without it is refused unless
    ``allow_uncommitted``."""
    model_path = folder / MODEL_FILE
    if not model_path.is_file():
        raise FileNotFoundError(f"No {MODEL_FILE} in {folder}. Received: uri={str(folder)!r}")
    marker_path = folder / MARKER_NAME
    if not marker_path.is_file():
        _refuse_uncommitted(str(folder), allow_uncommitted=allow_uncommitted)
    else:
        marker = Marker.from_json(marker_path.read_bytes(), key=str(marker_path))
        expected = marker.outputs.get(MODEL_FILE, {}).get("sha256")
        if expected is not None and sha256_file(model_path) != expected:
            raise ValueError(f"{model_path} does not match the sha256 recorded in {marker_path}")
    return model_path


def fetch_model(
    uri: str,
    dest_dir: str | os.PathLike[str],
    *,
    s3: Mapping[str, Any] | None = None,
    allow_uncommitted: bool = False,
) -> Path:
    """Makes the model file a URI names available locally.

    Args:
        uri: A ``.keras`` file (path, ``file://`` or ``s3://``), or a folder/prefix holding ``model.keras``;
            a committed folder's or prefix's ``_SUCCESS`` marker verifies the file's sha256.
        dest_dir: Directory that receives a downloaded copy (S3 only; local files are used in place).
        s3: Options of :class:`cxrcore.storage.S3Store`.
        allow_uncommitted: Load a folder's or prefix's model even without its ``_SUCCESS`` marker (forensics).

    Returns:
        The local path of the model file.

    Raises:
        FileNotFoundError: Nothing at the URI; the message names it.
        UncommittedModelError: A folder or prefix without a marker (unless ``allow_uncommitted``).
        ValueError: A malformed URI, or a file that does not match its marker.
        TransientStoreError: The store failed transiently.
    """
    if not uri.startswith("s3://"):
        path = _local_path(uri)
        if path.is_dir():
            return _verified_local_model(path, allow_uncommitted=allow_uncommitted)
        if not path.is_file():
            raise FileNotFoundError(f"No model file or folder at {path}. Received: uri={uri!r}")
        return path
    bucket, key = parse_s3_uri(uri)
    if not key:
        raise ValueError(f"An s3:// model URI must name a .keras object or a prefix. Received: uri={redact_uri(uri)!r}")
    store = open_store(f"s3://{bucket}", s3=s3)
    expected = None
    model_key = key
    if not key.endswith(".keras"):
        model_key = join_key(key, MODEL_FILE)
        marker = store.read_marker(key)
        expected = marker.outputs.get(MODEL_FILE, {}).get("sha256") if marker is not None else None
        if marker is None and store.exists(model_key):
            _refuse_uncommitted(redact_uri(uri), allow_uncommitted=allow_uncommitted)
    try:
        return store.get_file(model_key, Path(dest_dir) / MODEL_FILE, sha256=expected)
    except ObjectNotFoundError:
        shown = redact_uri(uri)
        raise FileNotFoundError(
            f"No model at s3://{bucket}/{model_key} (a .keras object or a prefix holding {MODEL_FILE}). "
            f"Received: uri={shown!r}"
        ) from None


# ---------------------------------------------------------------------------------------------------- loading
def load_model_file(path: str | os.PathLike[str], *, source: str | None = None):
    """Loads a ``.keras`` model saved by this project, for inference (safe mode, not compiled).

    Importing :mod:`cxrcore.models` first registers the project's serializable layers (package ``cxrcore``),
    so classifiers of every backbone and the DCGAN's generator and discriminator load.

    Args:
        path: The local ``.keras`` file.
        source: What to name in an error (a redacted URI); default: the path.

    Returns:
        The ``keras.Model``.

    Raises:
        ValueError: The file is not a loadable Keras model.
    """
    import keras

    import cxrcore.models  # noqa: F401 - registers the custom layers of the saved models

    shown = source if source is not None else str(path)
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises ValueError, OSError, TypeError, zipfile errors
        raise ValueError(
            f"{shown} is not a loadable Keras model: {type(exc).__name__}: {exc}. Received: uri={shown!r}"
        ) from exc


def load_model_uri(uri: str, *, s3: Mapping[str, Any] | None = None, allow_uncommitted: bool = False):
    """Loads a classifier saved by ``cxr-train-classifier`` (or any ``.keras`` file of ``cxrcore.models``).

    Args:
        uri: A ``.keras`` file (local path, ``file://`` or ``s3://`` URI), or a folder/prefix holding
            ``model.keras`` such as ``s3://bucket/root/runs/r1/classifiers/baseline/vgg16/seed-0``. A committed
            prefix's ``_SUCCESS`` marker is used to verify the file's sha256.
        s3: Options of :class:`cxrcore.storage.S3Store`; credentials come from boto3's default chain.
        allow_uncommitted: Load a folder's or prefix's model even without its ``_SUCCESS`` marker (forensics).

    Returns:
        The ``keras.Model`` (not compiled: for inference).

    Raises:
        FileNotFoundError: Nothing at the URI; the message names it.
        ValueError: The file is not a loadable Keras model.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError(f"A model URI must be a non-empty string. Received: uri={uri!r}")
    with tempfile.TemporaryDirectory(prefix="cxr-model-") as tmp:
        path = fetch_model(uri, tmp, s3=s3, allow_uncommitted=allow_uncommitted)
        model = load_model_file(path, source=redact_uri(uri))
    log.info("model_loaded", uri=redact_uri(uri), model=model.name, input_shape=model_input_shape(model))
    return model


# ---------------------------------------------------------------------------------------------------- prediction
def model_input_shape(model) -> tuple[int | None, int | None, int]:
    """``(height, width, channels)`` of a single-input image model (``None`` for dynamic sides).

    Raises:
        ValueError: Several inputs, or not ``(batch, height, width, 1 or 3)``.
    """
    shape = model.input_shape
    if isinstance(shape, list):
        if len(shape) != 1:
            raise ValueError(f"Expected a single-input model. Received: input_shape={shape}")
        shape = shape[0]
    if len(shape) != 4 or shape[-1] not in (1, 3):
        raise ValueError(f"Expected an image model (batch, height, width, 1 or 3). Received: input_shape={shape}")
    return shape[1], shape[2], int(shape[-1])


def resolve_image_size(model, image_size: int | None) -> int:
    """The square side images are decoded at for ``model``: ``image_size`` or the model's input size.

    Raises:
        ValueError: ``image_size`` contradicts the model, or neither gives a square size.
    """
    height, width, _ = model_input_shape(model)
    if image_size is not None:
        if height is not None and (height, width) != (image_size, image_size):
            raise ValueError(
                f"image_size does not match the model input {height}x{width}. Received: image_size={image_size}"
            )
        return image_size
    if height is None or width is None:
        raise ValueError("The model has a dynamic input size; pass image_size. Received: image_size=None")
    if height != width:
        raise ValueError(f"Only square inputs are supported. Received: input {height}x{width}")
    return int(height)


def predict_pixels(model, pixels: np.ndarray, *, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """Probabilities of PNEUMONIA for uint8 grayscale images, resized once to the model's input size.

    Args:
        model: A classifier taking raw ``[0, 255]`` pixels.
        pixels: uint8 ``(n, height, width)``; resized with the training pipeline's resize when the model's
            (square) input size differs.
        batch_size: Images per forward pass.

    Returns:
        float64 ``(n,)`` probabilities.

    Raises:
        ValueError: Bad pixel shape, a non-square model input, or not one finite probability per image.
    """
    if pixels.ndim != 3:
        raise ValueError(f"pixels must be (n, height, width). Received: shape={pixels.shape}")
    if len(pixels) == 0:
        return np.zeros((0,), dtype=np.float64)
    height, width, channels = model_input_shape(model)
    if height is not None and width is not None and (height, width) != pixels.shape[1:]:
        if height != width:
            raise ValueError(f"Only square model inputs are supported. Received: input {height}x{width}")
        from cxrcore.data.pipeline import resize_images

        pixels = resize_images(pixels, int(height))
    outputs = []
    for start in range(0, len(pixels), batch_size):
        batch = pixels[start : start + batch_size].astype(np.float32)[..., None]
        if channels == 3:
            batch = np.repeat(batch, 3, axis=-1)
        outputs.append(np.asarray(model.predict_on_batch(batch), dtype=np.float64).reshape(-1))
    probabilities = np.concatenate(outputs)
    if probabilities.shape != (len(pixels),) or not np.isfinite(probabilities).all():
        raise ValueError(
            f"Model {model.name} must give one finite probability per image. "
            f"Received: shape={probabilities.shape} for {len(pixels)} images"
        )
    return probabilities
