"""Benchmark: images/s of one training epoch's input at 128 px, ingested shards vs a JPEG folder.

Both sides run in this one process over the same images:

- ``shards``: ``load_dataset`` from the store (verify hashes) + ``make_dataset`` (resize once, shuffle, batch,
  3 channels, prefetch). Epoch 1 includes loading and resizing; epoch 2 is steady state.
- ``image_dataset_from_directory``: ``keras.utils.image_dataset_from_directory`` over the JPEG folder (decode
  and resize every epoch), with ``prefetch`` as its docs recommend.

The one-off import (``cxr data import``) is timed and reported separately: it is paid once per dataset version,
not per epoch. Data: ``../shared/data/chest_xray/train`` when present, else demo phantoms at 224 px.

Usage: ``python bench/input_pipeline.py [--data DIR] [--image-size 128] [--batch-size 32] [--out FILE]``.
Prints a table and writes JSON (default ``bench/results/input_pipeline.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REAL_DATA = ROOT.parent / "shared" / "data" / "chest_xray" / "train"


def _epoch(dataset) -> tuple[int, float]:
    start = time.perf_counter()
    count = 0
    for images, _labels in dataset:
        count += int(images.shape[0])
    return count, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="folder with NORMAL/ PNEUMONIA/ (default: real data or demo)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--demo-per-class", type=int, default=800, help="demo images per class when no real data")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "input_pipeline.json")
    args = parser.parse_args(argv)

    import keras
    import numpy as np
    import tensorflow as tf

    from cxrcore.config import PrepareSettings
    from cxrcore.data.dataset import load_dataset
    from cxrcore.data.demo import write_demo_dataset
    from cxrcore.data.ingest import import_dataset
    from cxrcore.data.pipeline import make_dataset
    from cxrcore.logging import configure_logging
    from cxrcore.storage import open_store

    configure_logging("WARNING", "console")
    with tempfile.TemporaryDirectory(prefix="cxr-bench-") as tmp:
        tmp_path = Path(tmp)
        if args.data is not None:
            data_dir, data_kind = args.data, "given"
        elif REAL_DATA.is_dir():
            data_dir, data_kind = REAL_DATA, "kaggle-train"
        else:
            data_dir, data_kind = tmp_path / "demo", "demo-phantoms"
            write_demo_dataset(data_dir, per_class=args.demo_per_class, size=224, seed=0)
            data_dir = data_dir / "train"
        store = open_store(f"file://{tmp_path / 'store'}")
        settings = PrepareSettings(source=str(data_dir), name="bench", image_size=224, split="paper")
        start = time.perf_counter()
        imported = import_dataset(store, settings)
        import_seconds = time.perf_counter() - start

        rows = []
        # --- ours: shards -> make_dataset
        start = time.perf_counter()
        loaded = load_dataset(store, "bench", imported.version)
        dataset = make_dataset(
            loaded.images,
            loaded.manifest["label"].to_numpy(),
            image_size=args.image_size,
            batch_size=args.batch_size,
            shuffle=True,
            seed=0,
        )
        setup = time.perf_counter() - start
        count, seconds = _epoch(dataset)
        rows.append(("shards", 1, count, setup + seconds))
        count, seconds = _epoch(dataset)
        rows.append(("shards", 2, count, seconds))

        # --- baseline: image_dataset_from_directory over the JPEG folder
        start = time.perf_counter()
        baseline = keras.utils.image_dataset_from_directory(
            data_dir,
            labels="inferred",
            label_mode="binary",
            class_names=["NORMAL", "PNEUMONIA"],
            color_mode="rgb",
            image_size=(args.image_size, args.image_size),
            batch_size=args.batch_size,
            shuffle=True,
            seed=0,
            verbose=False,
        ).prefetch(tf.data.AUTOTUNE)
        setup = time.perf_counter() - start
        count, seconds = _epoch(baseline)
        rows.append(("image_dataset_from_directory", 1, count, setup + seconds))
        count, seconds = _epoch(baseline)
        rows.append(("image_dataset_from_directory", 2, count, seconds))

    rate = {(name, epoch): count / seconds for name, epoch, count, seconds in rows}
    ratios = {
        f"epoch{epoch}": rate[("shards", epoch)] / rate[("image_dataset_from_directory", epoch)] for epoch in (1, 2)
    }
    print(f"input pipeline at {args.image_size}px, batch {args.batch_size}, data: {data_kind} ({data_dir})")
    print(f"one-off import into shards: {import_seconds:.1f} s ({imported.info['images']} images)")
    print(f"{'method':<30} {'epoch':>5} {'images':>7} {'seconds':>8} {'images/s':>10}")
    for name, epoch, count, seconds in rows:
        print(f"{name:<30} {epoch:>5} {count:>7} {seconds:>8.2f} {count / seconds:>10.0f}")
    for key, value in ratios.items():
        print(f"ratio shards / image_dataset_from_directory, {key}: {value:.2f}x")

    result = {
        "benchmark": "input_pipeline",
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "data": data_kind,
        "import_seconds": import_seconds,
        "rows": [
            {"method": name, "epoch": epoch, "images": count, "seconds": seconds, "images_per_s": count / seconds}
            for name, epoch, count, seconds in rows
        ],
        "ratio": ratios,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "tensorflow": tf.__version__},
        "numpy": np.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
