"""Train/test splits of a dataset manifest: ``paper``, ``official`` and ``patient``.

- ``paper``: stratified random split by class, as published (the paper pooled all images and split 80/20;
  images of one patient can land on both sides, which inflates test accuracy).
- ``official``: the source's own folders (Kaggle ``train/``, ``val/``, ``test/``).
- ``patient``: grouped by patient id and stratified by class: no patient on both sides.

Every split is deterministic for a given seed and manifest content (rows are ordered by ``sha256`` first, so
the order files were listed in does not matter).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from cxrcore.vocab import SPLIT_STRATEGIES

__all__ = ["SPLIT_STRATEGIES", "assign_split", "patients_on_both_sides", "split_summary"]

SplitStrategy = Literal[SPLIT_STRATEGIES]
_REQUIRED = {"paper": ("sha256", "class"), "official": ("source_split",), "patient": ("sha256", "class", "patient_id")}


def _check(frame: pd.DataFrame, strategy: str, test_fraction: float) -> None:
    if strategy not in SPLIT_STRATEGIES:
        raise ValueError(f"Unknown split strategy, expected one of {SPLIT_STRATEGIES}. Received: strategy={strategy!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1). Received: test_fraction={test_fraction}")
    missing = [column for column in _REQUIRED[strategy] if column not in frame.columns]
    if missing:
        raise ValueError(f"Manifest lacks columns {missing} needed by the {strategy!r} split")


def _stratified_random(frame: pd.DataFrame, test_fraction: float, rng: np.random.Generator) -> pd.Series:
    split = pd.Series("train", index=frame.index, dtype=object)
    for _, rows in frame.sort_values("sha256").groupby("class", sort=True):
        n_test = int(round(len(rows) * test_fraction))
        chosen = rng.permutation(rows.index.to_numpy())[:n_test]
        split.loc[chosen] = "test"
    return split


def _grouped_stratified(frame: pd.DataFrame, test_fraction: float, rng: np.random.Generator) -> pd.Series:
    """Greedy grouped split: patients (shuffled) join the test side of their majority class until each
    class reaches its target share. A patient with images of both classes counts toward both."""
    targets = (frame["class"].value_counts() * test_fraction).to_dict()
    per_patient = frame.groupby("patient_id")["class"].value_counts().unstack(fill_value=0)
    patients = np.array(sorted(per_patient.index))
    rng.shuffle(patients)
    taken = {name: 0 for name in targets}
    test_patients = []
    for patient in patients:
        counts = per_patient.loc[patient]
        majority = counts.idxmax()
        if taken[majority] >= targets[majority]:
            continue
        # Take the patient when it brings this class closer to its target than leaving it out would.
        after = taken[majority] + counts[majority]
        if abs(after - targets[majority]) <= abs(taken[majority] - targets[majority]):
            test_patients.append(patient)
            for name, count in counts.items():
                taken[name] += int(count)
    split = pd.Series("train", index=frame.index, dtype=object)
    split[frame["patient_id"].isin(set(test_patients))] = "test"
    return split


def assign_split(
    frame: pd.DataFrame,
    strategy: SplitStrategy,
    *,
    test_fraction: float = 0.2,
    seed: int = 42,
) -> pd.Series:
    """Returns a ``split`` column (``train``/``test``, plus ``val`` for ``official``) aligned with ``frame``.

    Args:
        frame: Manifest rows (``sha256``, ``class``, ``patient_id``, ``source_split`` as needed).
        strategy: ``paper``, ``official`` or ``patient``.
        test_fraction: Share of each class in the test side (ignored by ``official``).
        seed: Seed of the shuffle.

    Raises:
        ValueError: Unknown strategy, bad fraction, missing columns, or an ``official`` split on a source
            without ``train``/``test`` folders.
    """
    _check(frame, strategy, test_fraction)
    if frame.empty:
        return pd.Series([], index=frame.index, dtype=object)
    rng = np.random.default_rng(seed)
    if strategy == "official":
        given = frame["source_split"].fillna("")
        unknown = sorted(set(given) - {"train", "val", "test"})
        if unknown or not (given == "test").any() or not (given == "train").any():
            raise ValueError(
                "The 'official' split needs the source's train/ and test/ folders (Kaggle layout); "
                f"found split folders {sorted(set(given) - {''})} and {int((given == '').sum())} files outside them"
            )
        return given.astype(object)
    if strategy == "paper":
        return _stratified_random(frame, test_fraction, rng)
    return _grouped_stratified(frame, test_fraction, rng)


def patients_on_both_sides(frame: pd.DataFrame, split: pd.Series | None = None) -> int:
    """Counts patients with images in ``test`` and in any other split (train/val): the leakage measure."""
    split = frame["split"] if split is None else split
    sides = pd.DataFrame({"patient_id": frame["patient_id"], "test": split == "test"})
    both = sides.groupby("patient_id")["test"].agg(["any", "all"])
    return int((both["any"] & ~both["all"]).sum())


def split_summary(frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    """``{split: {class: count}}`` of a manifest with a ``split`` column."""
    counts = frame.groupby(["split", "class"]).size()
    summary: dict[str, dict[str, int]] = {}
    for (split, name), count in counts.items():
        summary.setdefault(str(split), {})[str(name)] = int(count)
    return summary
