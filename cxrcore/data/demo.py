"""The demo dataset: procedural phantoms (:mod:`cxrcore.data.phantom`) written in the Kaggle chest X-ray layout.

See docs/architecture.md#data-flow. The Kaggle chest X-ray data cannot be redistributed, so demos, smoke runs and
CI use phantoms instead: chest-X-ray-like images rendered analytically, PNEUMONIA ones with patchy consolidations.
These images are NOT medical data.

:func:`write_demo_dataset` writes the Kaggle layout (``train/`` and ``test/``, each with ``NORMAL/`` and
``PNEUMONIA/``), split by patient, with Kaggle-style file names (``PHANTOMN-IM-0001-0001.jpeg``) so patient ids
parse like the real ones, plus ``DEMO_SYNTHETIC.json`` and ``README.txt`` so every downstream tool can label the
data as synthetic.

Determinism: every patient draws its anatomy from ``numpy.random.default_rng([seed, class_index, patient, 0])``
and every image its view from ``default_rng([seed, class_index, patient, 1, image])``, so the same parameters
give byte-identical files and generating one patient never depends on another.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cxrcore.data.phantom import (
    MAXIMUM_SIZE,
    MINIMUM_SIZE,
    generate_phantom,
    sample_anatomy,
    sample_view,
    validate_size,
)
from cxrcore.data.phantom import render as _render  # called through this module's global (tests replace it)
from cxrcore.vocab import CLASS_NAMES, DEMO_FILENAME_PATTERN

__all__ = [
    "CLASS_NAMES",
    "FILENAME_PATTERN",
    "FILENAME_PREFIXES",
    "GENERATOR_NAME",
    "GENERATOR_VERSION",
    "JPEG_QUALITY",
    "MANIFEST_NAME",
    "MAXIMUM_SIZE",
    "MINIMUM_SIZE",
    "README_NAME",
    "SPLIT_NAMES",
    "generate_phantom",
    "parse_demo_uri",
    "write_demo_dataset",
]

GENERATOR_NAME = "cxrcore.data.demo"
GENERATOR_VERSION = 1
MANIFEST_NAME = "DEMO_SYNTHETIC.json"
README_NAME = "README.txt"
SPLIT_NAMES = ("train", "test")
FILENAME_PREFIXES = {"NORMAL": "PHANTOMN", "PNEUMONIA": "PHANTOMP"}
FILENAME_PATTERN = DEMO_FILENAME_PATTERN
JPEG_QUALITY = 95

_IMAGES_PER_PATIENT_CHOICES = (1, 2, 3)
_IMAGES_PER_PATIENT_PROBABILITIES = (0.5, 0.3, 0.2)

_README_TEXT = """\
SYNTHETIC DEMO DATA - NOT MEDICAL DATA

Every image in this folder is a procedural phantom drawn by {generator} (version {version}): ellipses, bands
and noise arranged to look roughly like a posteroanterior chest radiograph. No patient, no scanner and no real
radiograph was involved. "PNEUMONIA" phantoms carry painted-on patchy bright blobs; "NORMAL" ones do not.

The data exists so that the cxr-gan pipeline can be demonstrated and tested without the Kaggle chest X-ray
dataset, which cannot be redistributed. Never use it to train, validate or evaluate anything clinical, and
never report numbers measured on it as results about pneumonia.

Layout: train/ and test/, each with NORMAL/ and PNEUMONIA/, split by patient. File names follow the Kaggle
scheme <PREFIX>-IM-<patient>-<image>.jpeg (PHANTOMN = NORMAL, PHANTOMP = PNEUMONIA); a phantom "patient" has
one to three views of the same phantom anatomy. Parameters and counts are in {manifest}.
"""


# --------------------------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------------------------


def _plan_class(seed: int, class_index: int, per_class: int, test_fraction: float) -> list[tuple[int, int, str]]:
    """Decides the patients of one class, their image counts and their split.

    Args:
        seed: Dataset seed.
        class_index: Index into :data:`CLASS_NAMES`.
        per_class: Images of this class in total.
        test_fraction: Target fraction of the images in the test split.

    Returns:
        ``(patient, image_count, split)`` for every patient, patients numbered from 1.
    """
    rng = np.random.default_rng([seed, class_index, 0x5EED])
    image_counts: list[int] = []
    remaining = per_class
    while remaining > 0:
        count = int(rng.choice(_IMAGES_PER_PATIENT_CHOICES, p=_IMAGES_PER_PATIENT_PROBABILITIES))
        if not image_counts:
            count = min(count, per_class - 1)  # At least two patients, so both splits get one.
        count = min(count, remaining)
        image_counts.append(count)
        remaining -= count
    target = min(max(round(test_fraction * per_class), 1), per_class - 1)
    order = rng.permutation(len(image_counts))
    test_patients: set[int] = set()
    test_images = 0
    for index in order:
        if test_images + image_counts[index] <= target:
            test_patients.add(int(index))
            test_images += image_counts[index]
        if test_images == target:
            break
    if not test_patients:
        test_patients.add(int(min(order, key=lambda index: image_counts[index])))
    return [
        (index + 1, count, "test" if index in test_patients else "train")
        for index, count in enumerate(image_counts)
    ]


def _file_name(class_name: str, patient: int, image: int) -> str:
    """The Kaggle-style file name of one phantom image."""
    return f"{FILENAME_PREFIXES[class_name]}-IM-{patient:04d}-{image:04d}.jpeg"


def _summary(out_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The dictionary :func:`write_demo_dataset` returns, built from a manifest."""
    return {
        "out_dir": str(out_dir),
        "counts": {split: dict(classes) for split, classes in manifest["counts"].items()},
        "patients": {split: dict(classes) for split, classes in manifest["patients"].items()},
        "seed": manifest["seed"],
        "size": manifest["size"],
        "per_class": manifest["per_class"],
        "test_fraction": manifest["test_fraction"],
        "synthetic": True,
    }


def _existing_summary(out_dir: Path, parameters: dict[str, Any]) -> dict[str, Any] | None:
    """Checks a non-empty existing ``out_dir``.

    Args:
        out_dir: The resolved target directory, which exists.
        parameters: The requested generator parameters.

    Returns:
        The summary when ``out_dir`` already holds a complete demo dataset with identical parameters, ``None``
        when ``out_dir`` is empty.

    Raises:
        ValueError: If ``out_dir`` is not a directory, holds anything else, or holds a demo dataset with other
            parameters or missing files.
    """
    if not out_dir.is_dir():
        raise ValueError(f"Output path exists and is not a directory: {out_dir}")
    if not any(out_dir.iterdir()):
        return None
    manifest_path = out_dir / MANIFEST_NAME
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = None
    is_demo_manifest = (
        isinstance(manifest, dict)
        and manifest.get("generator") == GENERATOR_NAME
        and manifest.get("synthetic") is True
    )
    if not is_demo_manifest:
        raise ValueError(
            f"Refusing to write the demo dataset into non-empty directory {out_dir}: it is not a demo dataset "
            f"(no valid {MANIFEST_NAME}). Choose an empty or new directory."
        )
    differing = {
        name: (manifest.get(name), value) for name, value in parameters.items() if manifest.get(name) != value
    }
    if differing:
        details = ", ".join(
            f"{name}: existing={existing!r}, requested={requested!r}"
            for name, (existing, requested) in differing.items()
        )
        raise ValueError(
            f"Refusing to overwrite the demo dataset in {out_dir}: it was generated with other parameters "
            f"({details}). Choose another directory or delete it first."
        )
    for split in SPLIT_NAMES:
        for class_name in CLASS_NAMES:
            folder = out_dir / split / class_name
            found = sum(1 for path in folder.glob("*.jpeg")) if folder.is_dir() else 0
            expected = manifest["counts"][split][class_name]
            if found != expected:
                raise ValueError(
                    f"Demo dataset in {out_dir} is incomplete or modified: {split}/{class_name} holds {found} "
                    f"images, its {MANIFEST_NAME} says {expected}. Delete it and generate it again."
                )
    return _summary(out_dir, manifest)


def parse_demo_uri(uri: str) -> dict[str, Any]:
    """Parses ``demo://?per_class=200&size=128&seed=0&test_fraction=0.2`` into :func:`write_demo_dataset` arguments.

    The demo source lets a workflow run without any data: phantoms are generated inside the prepare job
    (:mod:`cxrcore.data.ingest`).

    Args:
        uri: The ``demo://`` source.

    Returns:
        The options given, by name (``per_class``, ``size``, ``seed``, ``test_fraction``).

    Raises:
        ValueError: Not a ``demo://?...`` URI, an unknown option, or a value that is not a number.
    """
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme != "demo" or parsed.netloc or parsed.path not in ("", "/"):
        raise ValueError(f"Demo source must look like demo://?per_class=200&size=128&seed=0. Received: source={uri!r}")
    kinds = {"per_class": int, "size": int, "seed": int, "test_fraction": float}
    options: dict[str, Any] = {}
    for name, value in urllib.parse.parse_qsl(parsed.query, keep_blank_values=True, strict_parsing=False):
        if name not in kinds:
            raise ValueError(f"Unknown demo source option {name!r} (use {sorted(kinds)}). Received: source={uri!r}")
        try:
            options[name] = kinds[name](value)
        except ValueError as exc:
            raise ValueError(f"Demo source option {name} must be a number. Received: {name}={value!r}") from exc
    return options


def write_demo_dataset(
    out_dir: str | os.PathLike[str],
    *,
    per_class: int = 200,
    size: int = 128,
    seed: int = 0,
    test_fraction: float = 0.2,
) -> dict[str, Any]:
    """Writes a demo dataset of phantoms in the Kaggle chest X-ray layout, atomically.

    The images are written to a temporary sibling directory that is renamed into place at the end, so an
    interrupted run leaves no half-written ``out_dir``. Re-running with identical parameters on a finished
    dataset does nothing and returns the same summary.

    Args:
        out_dir: Target directory; must not exist, be empty, or hold a demo dataset with identical parameters.
        per_class: Images per class (NORMAL and PNEUMONIA each), at least 2.
        size: Side of the square images in pixels, 16 to 1024.
        seed: Non-negative integer seed; the same parameters give byte-identical files.
        test_fraction: Approximate fraction of each class's images in ``test/``, strictly between 0 and 1.
            Patients never straddle the split.

    Returns:
        A summary: ``out_dir`` (absolute), ``counts`` and ``patients`` per split and class, ``seed``, ``size``,
        ``per_class``, ``test_fraction`` and ``synthetic=True``.

    Raises:
        ValueError: If a parameter is out of range, or ``out_dir`` exists with other content.
    """
    parameters = _parameters(per_class, size, seed, test_fraction)
    target = Path(out_dir).expanduser().resolve()
    if target.exists():
        existing = _existing_summary(target, parameters)
        if existing is not None:
            return existing
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.partial-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        manifest = _write_tree(staging, parameters)
        try:
            # Replaces a missing or empty target atomically; fails if someone filled it meanwhile.
            os.replace(staging, target)
        except OSError:
            existing = _existing_summary(target, parameters) if target.exists() else None
            if existing is None:
                raise
            shutil.rmtree(staging, ignore_errors=True)
            return existing
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return _summary(target, manifest)


def _parameters(per_class: Any, size: Any, seed: Any, test_fraction: Any) -> dict[str, Any]:
    """The generator parameters recorded in ``DEMO_SYNTHETIC.json``, validated (see :func:`write_demo_dataset`)."""
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 2:
        raise ValueError(f"per_class must be an integer of at least 2. Received: per_class={per_class!r}")
    validate_size(size)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer. Received: seed={seed!r}")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not (
        0.0 < test_fraction < 1.0
    ):
        raise ValueError(
            f"test_fraction must be strictly between 0 and 1. Received: test_fraction={test_fraction!r}"
        )
    return {
        "version": GENERATOR_VERSION,
        "seed": int(seed),
        "size": int(size),
        "per_class": int(per_class),
        "test_fraction": float(test_fraction),
    }


def _write_tree(staging: Path, parameters: dict[str, Any]) -> dict[str, Any]:
    """Writes every image, ``DEMO_SYNTHETIC.json`` and ``README.txt`` into ``staging``; returns the manifest."""
    seed, size = parameters["seed"], parameters["size"]
    counts = {split: {class_name: 0 for class_name in CLASS_NAMES} for split in SPLIT_NAMES}
    patients = {split: {class_name: 0 for class_name in CLASS_NAMES} for split in SPLIT_NAMES}
    for split in SPLIT_NAMES:
        for class_name in CLASS_NAMES:
            (staging / split / class_name).mkdir(parents=True)
    for class_index, class_name in enumerate(CLASS_NAMES):
        plan = _plan_class(seed, class_index, parameters["per_class"], parameters["test_fraction"])
        for patient, image_count, split in plan:
            patient_rng = np.random.default_rng([seed, class_index, patient, 0])
            anatomy = sample_anatomy(patient_rng, pneumonia=class_name == "PNEUMONIA")
            for image in range(1, image_count + 1):
                view_rng = np.random.default_rng([seed, class_index, patient, 1, image])
                pixels = _render(anatomy, sample_view(view_rng), size, view_rng)
                path = staging / split / class_name / _file_name(class_name, patient, image)
                Image.fromarray(pixels).save(path, format="JPEG", quality=JPEG_QUALITY)
            counts[split][class_name] += image_count
            patients[split][class_name] += 1
    manifest = {
        "synthetic": True,
        "generator": GENERATOR_NAME,
        **parameters,
        "counts": counts,
        "patients": patients,
        "classes": list(CLASS_NAMES),
        "filename_prefixes": dict(FILENAME_PREFIXES),
        "note": "Procedural phantoms, not medical data.",
    }
    (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (staging / README_NAME).write_text(
        _README_TEXT.format(generator=GENERATOR_NAME, version=GENERATOR_VERSION, manifest=MANIFEST_NAME),
        encoding="utf-8",
    )
    return manifest
