"""Trained classifiers outside the pipeline: load one from a path or ``s3://`` URI, score a folder, predict images.

``cxr evaluate MODEL_URI DATA_DIR`` and ``cxr predict MODEL_URI IMAGE...`` are thin wrappers around
:func:`load_model_uri`, :func:`evaluate_folder` and :func:`predict_images`. Images of any size, mode and bit depth
go through :func:`cxrcore.data.images.decode_image` (the same decoder the dataset import uses), so a folder of
full-size Kaggle JPEGs, 16-bit PNGs or RGBA screenshots is scored exactly like the stored test set: 8-bit
grayscale, squashed to the model's input size, repeated to the model's channels, raw ``[0, 255]`` pixels (every
classifier carries its own preprocessing). Unreadable files are listed with their reason, never fatal.

:func:`study_parameter_counts` is what ``cxr models`` prints: every model of the study at the paper's settings
beside the parameter count the paper publishes.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import os
import tempfile
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxrcore.data.images import DEFAULT_MAX_BYTES, ImageRejected, decode_image
from cxrcore.logging import get_logger
from cxrcore.metrics import binary_metrics
from cxrcore.storage import Marker, ObjectNotFoundError, join_key, open_store, parse_s3_uri, redact_uri, sha256_file
from cxrcore.vocab import CLASS_NAMES, PAPER_GAN_IMAGE_SIZE, PAPER_IMAGE_SIZE, PAPER_LATENT_DIM

__all__ = [
    "CLASS_FOLDERS",
    "MODEL_FILE",
    "PAPER_SETTINGS",
    "fetch_file",
    "evaluate_folder",
    "load_model_uri",
    "model_input_shape",
    "predict_images",
    "predict_pixels",
    "study_parameter_counts",
]

log = get_logger(__name__)

#: File name of a classifier inside its output prefix (``runs/.../seed-<seed>/model.keras``).
MODEL_FILE = "model.keras"
#: Class folders of an evaluation directory, in label order (0 NORMAL, 1 PNEUMONIA).
CLASS_FOLDERS: tuple[str, str] = CLASS_NAMES
#: Settings at which ``cxr models`` counts parameters (the paper's: classifiers 128 px, DCGAN 64 px).
PAPER_SETTINGS: dict[str, int] = {
    "classifier_input_size": PAPER_IMAGE_SIZE,
    "gan_image_size": PAPER_GAN_IMAGE_SIZE,
    "latent_dim": PAPER_LATENT_DIM,
}
_PREDICT_BATCH = 32
_DECODE_WORKERS = 8
_EVAL_CHUNK = 1024


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


def _verified_local_model(folder: Path) -> Path:
    """``folder/model.keras``, checked against ``folder/_SUCCESS`` when the folder is a committed output."""
    model_path = folder / MODEL_FILE
    if not model_path.is_file():
        raise FileNotFoundError(f"No {MODEL_FILE} in {folder}. Received: uri={str(folder)!r}")
    marker_path = folder / "_SUCCESS"
    if marker_path.is_file():
        marker = Marker.from_json(marker_path.read_bytes(), key=str(marker_path))
        expected = marker.outputs.get(MODEL_FILE, {}).get("sha256")
        if expected is not None and sha256_file(model_path) != expected:
            raise ValueError(f"{model_path} does not match the sha256 recorded in {marker_path}")
    return model_path


def _fetch_model(uri: str, dest_dir: Path, s3: Mapping[str, Any] | None) -> Path:
    if not uri.startswith("s3://"):
        path = _local_path(uri)
        if path.is_dir():
            return _verified_local_model(path)
        if not path.is_file():
            raise FileNotFoundError(f"No model file or folder at {path}. Received: uri={uri!r}")
        return path
    bucket, key = parse_s3_uri(uri)
    if not key:
        raise ValueError(f"An s3:// model URI must name a .keras object or a prefix. Received: uri={redact_uri(uri)!r}")
    store = open_store(f"s3://{bucket}", s3=s3)
    if key.endswith(".keras"):
        expected = None
        model_key = key
    else:
        model_key = join_key(key, MODEL_FILE)
        marker = store.read_marker(key)
        expected = marker.outputs.get(MODEL_FILE, {}).get("sha256") if marker is not None else None
        if marker is None:
            log.warning("model_prefix_uncommitted", uri=redact_uri(uri))
    try:
        return store.get_file(model_key, dest_dir / MODEL_FILE, sha256=expected)
    except ObjectNotFoundError:
        shown = redact_uri(uri)
        raise FileNotFoundError(
            f"No model at s3://{bucket}/{model_key} (a .keras object or a prefix holding {MODEL_FILE}). "
            f"Received: uri={shown!r}"
        ) from None


def load_model_uri(uri: str, *, s3: Mapping[str, Any] | None = None):
    """Loads a classifier saved by ``cxr-train-classifier`` (or any ``.keras`` file of ``cxrcore.models``).

    Args:
        uri: A ``.keras`` file (local path, ``file://`` or ``s3://`` URI), or a folder/prefix holding
            ``model.keras`` such as ``s3://bucket/root/runs/r1/classifiers/baseline/vgg16/seed-0``. A committed
            prefix's ``_SUCCESS`` marker is used to verify the file's sha256.
        s3: Options of :class:`cxrcore.storage.S3Store`; credentials come from boto3's default chain.

    Returns:
        The ``keras.Model`` (not compiled: for inference).

    Raises:
        FileNotFoundError: Nothing at the URI; the message names it.
        ValueError: The file is not a loadable Keras model.
    """
    import keras

    import cxrcore.models  # noqa: F401 - registers the custom layers of the saved models

    if not isinstance(uri, str) or not uri.strip():
        raise ValueError(f"A model URI must be a non-empty string. Received: uri={uri!r}")
    with tempfile.TemporaryDirectory(prefix="cxr-model-") as tmp:
        path = _fetch_model(uri, Path(tmp), s3)
        try:
            model = keras.models.load_model(path, compile=False)
        except Exception as exc:  # noqa: BLE001 - Keras raises ValueError, OSError, TypeError, zipfile errors
            raise ValueError(
                f"{redact_uri(uri)} is not a loadable Keras model: {type(exc).__name__}: {exc}. "
                f"Received: uri={redact_uri(uri)!r}"
            ) from exc
    log.info("model_loaded", uri=redact_uri(uri), model=model.name, input_shape=model_input_shape(model))
    return model


# ---------------------------------------------------------------------------------------------------- prediction
def model_input_shape(model) -> tuple[int | None, int | None, int]:
    """``(height, width, channels)`` of a single-input image model (``None`` for dynamic sides)."""
    shape = model.input_shape
    if isinstance(shape, list):
        if len(shape) != 1:
            raise ValueError(f"Expected a single-input model. Received: input_shape={shape}")
        shape = shape[0]
    if len(shape) != 4 or shape[-1] not in (1, 3):
        raise ValueError(f"Expected an image model (batch, height, width, 1 or 3). Received: input_shape={shape}")
    return shape[1], shape[2], int(shape[-1])


def _resolve_image_size(model, image_size: int | None) -> int:
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


def predict_pixels(model, pixels: np.ndarray, *, batch_size: int = _PREDICT_BATCH) -> np.ndarray:
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


@dataclasses.dataclass
class _Decoded:
    path: Path
    pixels: np.ndarray | None
    reason: str | None = None
    detail: str | None = None


def _decode_path(path: Path, size: int) -> _Decoded:
    try:
        size_bytes = path.stat().st_size
        if size_bytes > DEFAULT_MAX_BYTES:
            return _Decoded(path, None, "too-large-file", f"{size_bytes} bytes; the limit is {DEFAULT_MAX_BYTES}")
        data = path.read_bytes()
    except OSError as exc:
        return _Decoded(path, None, "unreadable", f"{type(exc).__name__}: {exc}")
    try:
        return _Decoded(path, decode_image(data, size=size).pixels)
    except ImageRejected as exc:
        return _Decoded(path, None, exc.reason, exc.detail)


def _decode_many(paths: Sequence[Path], size: int) -> list[_Decoded]:
    if len(paths) <= 1:
        return [_decode_path(path, size) for path in paths]
    workers = max(1, min(_DECODE_WORKERS, os.cpu_count() or 1, len(paths)))
    with cf.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda path: _decode_path(path, size), paths))


def _class_folders(data_dir: Path) -> dict[str, Path]:
    if not data_dir.is_dir():
        raise FileNotFoundError(f"No directory at {data_dir}. Received: data_dir={str(data_dir)!r}")
    children = {child.name.upper(): child for child in sorted(data_dir.iterdir()) if child.is_dir()}
    found = {name: children[name] for name in CLASS_FOLDERS if name in children}
    if not found:
        raise ValueError(
            f"{data_dir} must hold class folders {' and '.join(CLASS_FOLDERS)} (any case). "
            f"Received: folders={sorted(children)}"
        )
    return found


def _image_files(folder: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        files.extend(Path(dirpath) / name for name in sorted(filenames) if not name.startswith("."))
    return files


def evaluate_folder(
    model,
    data_dir: str | os.PathLike[str],
    *,
    image_size: int | None = None,
    threshold: float = 0.5,
    batch_size: int = _PREDICT_BATCH,
) -> dict[str, Any]:
    """Scores a classifier on a ``NORMAL/ PNEUMONIA/`` folder of images of any size or mode.

    Args:
        model: A classifier (raw ``[0, 255]`` input, sigmoid P(PNEUMONIA) output).
        data_dir: Folder holding ``NORMAL/`` and/or ``PNEUMONIA/`` (any case; files in sub-folders count).
        image_size: Input size; default: the model's.
        threshold: Decision threshold on P(PNEUMONIA).
        batch_size: Images per forward pass.

    Returns:
        The metrics of :func:`cxrcore.metrics.binary_metrics` (``n``, ``accuracy``, ``accuracy_ci95``,
        ``precision_macro``, ``recall_macro``, ``f1_macro``, ``sensitivity``, ``specificity``, ``auc``,
        ``confusion_matrix``, ``collapsed``, ...) plus ``model``, ``data_dir``, ``image_size``, ``counts`` (images
        scored per class), ``skipped_count`` and ``skipped`` (``path`` relative to ``data_dir``, ``reason``,
        ``detail``).

    Raises:
        FileNotFoundError: ``data_dir`` does not exist.
        ValueError: No class folder, or not one readable image.
    """
    root = Path(data_dir)
    size = _resolve_image_size(model, image_size)
    folders = _class_folders(root)
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(CLASS_FOLDERS):
        if name in folders:
            found = _image_files(folders[name])
            paths.extend(found)
            labels.extend([label] * len(found))
    kept_labels_list: list[int] = []
    chunks: list[np.ndarray] = []
    skipped = []
    # Decode and predict chunk by chunk, so memory stays bounded for folders of any size.
    for start in range(0, len(paths), _EVAL_CHUNK):
        decoded = _decode_many(paths[start : start + _EVAL_CHUNK], size)
        pixels = [item.pixels for item in decoded if item.pixels is not None]
        kept_labels_list.extend(
            label for item, label in zip(decoded, labels[start : start + _EVAL_CHUNK]) if item.pixels is not None
        )
        skipped.extend(
            {"path": item.path.relative_to(root).as_posix(), "reason": item.reason, "detail": item.detail}
            for item in decoded
            if item.pixels is None
        )
        if pixels:
            chunks.append(predict_pixels(model, np.stack(pixels), batch_size=batch_size))
    for entry in skipped:
        log.warning("image_skipped", **entry)
    if not chunks:
        raise ValueError(
            f"No readable image in {root} ({len(paths)} file(s), {len(skipped)} skipped). "
            f"Received: data_dir={str(root)!r}"
        )
    kept_labels = np.asarray(kept_labels_list, dtype=int)
    probabilities = np.concatenate(chunks)
    metrics = binary_metrics(kept_labels, probabilities, threshold=threshold)
    result = {
        "model": model.name,
        "data_dir": str(root),
        "image_size": size,
        "counts": {name: int((kept_labels == label).sum()) for label, name in enumerate(CLASS_FOLDERS)},
        **metrics,
        "skipped_count": len(skipped),
        "skipped": skipped,
    }
    if metrics["collapsed"]:
        log.warning("model_collapsed", collapsed_to=metrics["collapsed_to"], n=metrics["n"], data_dir=str(root))
    return result


def predict_images(
    model,
    paths: Sequence[str | os.PathLike[str]],
    *,
    image_size: int | None = None,
    threshold: float = 0.5,
    batch_size: int = _PREDICT_BATCH,
) -> list[dict[str, Any]]:
    """Probability of PNEUMONIA for each image file, in the given order.

    Args:
        model: A classifier (raw ``[0, 255]`` input).
        paths: Image files of any size or mode.
        image_size: Input size; default: the model's.
        threshold: Threshold for ``label_predicted``.
        batch_size: Images per forward pass.

    Returns:
        One dict per path: ``path``, ``probability`` (float), ``label_predicted`` (``NORMAL``/``PNEUMONIA``); an
        unreadable file gets ``probability`` and ``label_predicted`` ``None`` and an ``error`` (``reason: detail``).
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1). Received: threshold={threshold}")
    size = _resolve_image_size(model, image_size)
    decoded = _decode_many([Path(path) for path in paths], size)
    kept = [index for index, item in enumerate(decoded) if item.pixels is not None]
    probabilities = (
        predict_pixels(model, np.stack([decoded[index].pixels for index in kept]), batch_size=batch_size)
        if kept
        else np.zeros((0,))
    )
    by_index = dict(zip(kept, probabilities.tolist()))
    results = []
    for index, (path, item) in enumerate(zip(paths, decoded)):
        if index in by_index:
            probability = float(by_index[index])
            label = CLASS_FOLDERS[int(probability >= threshold)]
            results.append({"path": str(path), "probability": probability, "label_predicted": label})
        else:
            results.append(
                {
                    "path": str(path),
                    "probability": None,
                    "label_predicted": None,
                    "error": f"{item.reason}: {item.detail}",
                }
            )
    return results


# ---------------------------------------------------------------------------------------------------- cxr models
def study_parameter_counts() -> list[dict[str, Any]]:
    """Every model of the study with its parameter counts at the paper's settings.

    Classifiers are built at 128 px with ``weights=None`` (counts do not depend on the weights); the DCGAN
    generator (100-d noise to 64 px) and discriminator (64 px) at width 1.0. Each row is compared with the
    trainable-parameter count the paper's Table 1 publishes, where it gives one.

    Returns:
        Rows with ``model``, ``role`` (classifier, generator, discriminator), ``input``, ``params_total``,
        ``params_trainable``, ``paper_params_trainable`` (``None`` when the paper gives none) and
        ``matches_paper`` (``None`` likewise).
    """
    import keras

    from cxrcore.models import (
        ALL_MODELS,
        DISCRIMINATOR_PAPER_PARAMS,
        GENERATOR_PAPER_PARAMS,
        PAPER_PARAMS,
        build_classifier,
        build_discriminator,
        build_generator,
        model_summary_counts,
    )

    size = PAPER_SETTINGS["classifier_input_size"]
    gan_size = PAPER_SETTINGS["gan_image_size"]
    latent = PAPER_SETTINGS["latent_dim"]
    builders = [
        (name, "classifier", f"{size}x{size}x3", lambda name=name: build_classifier(name, input_size=size))
        for name in ALL_MODELS
    ]
    builders += [
        ("generator", "generator", f"noise({latent})", lambda: build_generator(latent, output_size=gan_size)),
        (
            "discriminator",
            "discriminator",
            f"{gan_size}x{gan_size}x3",
            lambda: build_discriminator(input_size=gan_size),
        ),
    ]
    published = {
        "custom_cnn": PAPER_PARAMS,
        "generator": GENERATOR_PAPER_PARAMS,
        "discriminator": DISCRIMINATOR_PAPER_PARAMS,
    }
    rows = []
    for name, role, shape, build in builders:
        # Variables created in a StatelessScope are never initialised: shapes only, 3-4x faster to build.
        with keras.StatelessScope():
            total, trainable = model_summary_counts(build())
        keras.backend.clear_session()
        paper = published.get(name)
        rows.append(
            {
                "model": name,
                "role": role,
                "input": shape,
                "params_total": total,
                "params_trainable": trainable,
                "paper_params_trainable": paper,
                "matches_paper": None if paper is None else trainable == paper,
            }
        )
    return rows
