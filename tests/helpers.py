"""Shared test helpers: a tiny demo dataset imported into a store, as every job test needs one."""

from __future__ import annotations

from pathlib import Path

from cxrcore.config import PrepareSettings
from cxrcore.data.demo import write_demo_dataset
from cxrcore.data.ingest import ImportResult, import_dataset
from cxrcore.storage import Store


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

    Returns the import result (``.version`` is the dataset version).
    """
    source = Path(work_dir) / f"demo-{name}-{per_class}-{size}-{seed}"
    write_demo_dataset(source, per_class=per_class, size=size, seed=seed)
    settings = PrepareSettings(source=str(source), name=name, image_size=size, split=split, seed=seed)
    return import_dataset(store, settings)
