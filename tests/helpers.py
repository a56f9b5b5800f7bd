"""Shared test helpers: a tiny demo dataset imported into a store, and the S3 options that reach a store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cxrcore.storage import S3Store, Store

if TYPE_CHECKING:
    from cxrcore.data.ingest import ImportResult


def s3_options_for(store: Store) -> dict[str, str]:
    """The S3 options that reach ``store``'s endpoint with path addressing (as the test server needs), or ``{}``
    for a file store: for ``open_store(..., s3=...)``, ``S3Settings(**...)`` or a job Settings' ``s3=``."""
    if isinstance(store, S3Store):
        return {"endpoint_url": store.endpoint_url, "addressing_style": "path"}
    return {}


def make_demo_dataset(
    store: Store,
    work_dir: Path,
    *,
    name: str = "demo",
    per_class: int = 16,
    size: int = 32,
    seed: int = 0,
    split: str = "patient",
) -> ImportResult:
    """Writes demo phantoms under ``work_dir`` and imports them as dataset ``name`` into ``store``.

    Returns:
        The import result (``.version`` is the dataset version).
    """
    # Imported here so that importing this module (conftest does) stays as light as the storage layer.
    from cxrcore.config import PrepareSettings
    from cxrcore.data.demo import write_demo_dataset
    from cxrcore.data.ingest import import_dataset

    source = Path(work_dir) / f"demo-{name}-{per_class}-{size}-{seed}"
    write_demo_dataset(source, per_class=per_class, size=size, seed=seed)
    settings = PrepareSettings(source=str(source), name=name, image_size=size, split=split, seed=seed)
    return import_dataset(store, settings)


def write_inception_weights(path: Path, *, seed: int = 0) -> Path:
    """Writes a seeded, randomly initialised InceptionV3 (include_top=False) weights file, the stand-in for
    ImageNet weights that cannot be downloaded here (the arrays do not depend on the input size)."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.applications.InceptionV3(include_top=False, weights=None, input_shape=(75, 75, 3), pooling="avg")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(path)
    return path
