"""Benchmark: what InceptionV3 KID/FID costs beside the offline KID, and the FID trace term against ``sqrtm``.

Two comparisons, each side by side in this one process:

- **Features**: images/s of :func:`cxrcore.synthesis.inception.inception_features` (InceptionV3 at 299 px, the
  2048-d average pool; random weights: the cost does not depend on their values) against
  :func:`cxrcore.synthesis.kid.pixel_statistics_features` (the offline ``cxr-pixstat-v1`` map every run computes),
  on the same 64 px grayscale images. The ratio is what ``inception=auto`` adds per scored image when ImageNet
  weights are in the cache.
- **FID**: :func:`cxrcore.synthesis.inception.frechet_distance` (the exact trace term from the QR factors' small
  ``R_a R_b^T``) against the textbook formula with ``scipy.linalg.sqrtm`` of the 2048x2048 covariance product
  (what pytorch-fid computes), on random 2048-d features at the counts the jobs use (a GAN measurement: 256 vs
  256; a kept set: 105 vs 2,000; all generated: 1,500 vs 2,000). Both values are printed: they agree.

The ratio is always the time of ours over the baseline's (features: how many times the offline map's cost
InceptionV3 adds; FID: below 1 is faster). Methods run interleaved for ``--repeats`` rounds and each reports its fastest round (other load on a shared machine
only ever adds time); the first call of each side (graph tracing) is excluded.

Usage: ``python bench/inception_cost.py [--images 128] [--repeats 3] [--out bench/results/inception_cost.json]``.
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cxrcore.synthesis.inception import build_inception_extractor, frechet_distance, inception_features  # noqa: E402
from cxrcore.synthesis.kid import pixel_statistics_features  # noqa: E402

FID_CASES = ((256, 256), (105, 2000), (1500, 2000))


def _timed(function: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def _textbook_fid(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import linalg

    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b)
    return float((mean_a - mean_b) @ (mean_a - mean_b) + np.trace(cov_a + cov_b - 2.0 * root.real))


def _random_weights(path: Path) -> Path:
    import keras

    keras.utils.set_random_seed(0)
    keras.applications.InceptionV3(include_top=False, weights=None, input_shape=(75, 75, 3), pooling="avg").save_weights(
        path
    )
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128, help="64 px images per feature timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "inception_cost.json")
    args = parser.parse_args(argv)
    import tempfile

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.images, 64, 64), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        extractor = build_inception_extractor(str(_random_weights(Path(tmp) / "inceptionv3.weights.h5")))
    inception_features(extractor, images[:8])  # trace
    pixel_statistics_features(images[:8])
    rows = []
    seconds = {"inception": 1e9, "pixstat": 1e9}
    for _ in range(args.repeats):  # interleaved rounds
        seconds["inception"] = min(seconds["inception"], _timed(lambda: inception_features(extractor, images))[0])
        seconds["pixstat"] = min(seconds["pixstat"], _timed(lambda: pixel_statistics_features(images))[0])
    rates = {name: args.images / value for name, value in seconds.items()}
    rows.append({"comparison": "features, images/s", "ours": "inceptionv3 299 px", "value": round(rates["inception"], 2),
                 "baseline": "cxr-pixstat-v1", "baseline_value": round(rates["pixstat"], 1),
                 "ratio": round(rates["pixstat"] / rates["inception"], 1)})
    for rows_a, rows_b in FID_CASES:
        a = rng.standard_normal((rows_a, 2048)) * rng.uniform(0.1, 2.0, 2048)
        b = 0.1 + rng.standard_normal((rows_b, 2048)) * rng.uniform(0.1, 2.0, 2048)
        ours_s = baseline_s = 1e9
        for _ in range(args.repeats):
            elapsed, fid_ours = _timed(lambda: frechet_distance(a, b))
            ours_s = min(ours_s, elapsed)
            elapsed, fid_baseline = _timed(lambda: _textbook_fid(a, b))
            baseline_s = min(baseline_s, elapsed)
        rows.append({"comparison": f"FID {rows_a} vs {rows_b}, s", "ours": "QR + small SVD",
                     "value": round(ours_s, 3), "baseline": "scipy sqrtm 2048x2048",
                     "baseline_value": round(baseline_s, 3), "ratio": round(ours_s / baseline_s, 3),
                     "fid_ours": round(float(fid_ours), 4), "fid_baseline": round(float(fid_baseline), 4)})
    header = f"{'comparison':<26} {'ours':<20} {'value':>10} {'baseline':<22} {'value':>10} {'time ours/base':>15}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['comparison']:<26} {row['ours']:<20} {row['value']:>10} {row['baseline']:<22} "
              f"{row['baseline_value']:>10} {row['ratio']:>14}x")
    for row in rows[1:]:
        print(f"{row['comparison']}: FID ours {row['fid_ours']}, sqrtm {row['fid_baseline']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "inception_cost",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "images": args.images,
        "repeats": args.repeats,
        "rows": rows,
    }, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
