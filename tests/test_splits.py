"""Splits: no patient leakage for ``patient``, stratification within 1%, determinism, ``official`` folders."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from cxrcore.data.splits import assign_split, patients_on_both_sides, split_summary


def _manifest(n_normal_patients=300, n_pneumonia_patients=700, seed=0) -> pd.DataFrame:
    """Kaggle-like manifest: normal patients with 1-2 images, pneumonia patients with 1-4."""
    rng = np.random.default_rng(seed)
    rows = []
    for class_name, patients, max_images in (("NORMAL", n_normal_patients, 2), ("PNEUMONIA", n_pneumonia_patients, 4)):
        for patient in range(patients):
            for image in range(int(rng.integers(1, max_images + 1))):
                key = f"{class_name}-{patient}-{image}"
                rows.append(
                    {
                        "sha256": hashlib.sha256(key.encode()).hexdigest(),
                        "class": class_name,
                        "patient_id": f"{class_name[:1]}{patient}",
                        "source_split": "test" if patient % 10 == 0 else "train",
                    }
                )
    return pd.DataFrame(rows)


def _test_share(frame: pd.DataFrame, split: pd.Series) -> dict[str, float]:
    return {name: float((split[rows.index] == "test").mean()) for name, rows in frame.groupby("class")}


@pytest.mark.parametrize("strategy", ["paper", "patient"])
@pytest.mark.parametrize("test_fraction", [0.2, 0.3])
def test_stratified_within_one_percent(strategy, test_fraction):
    frame = _manifest()
    split = assign_split(frame, strategy, test_fraction=test_fraction, seed=7)
    assert set(split) == {"train", "test"}
    for name, share in _test_share(frame, split).items():
        assert abs(share - test_fraction) <= 0.01, (name, share)


def test_patient_split_has_no_patient_on_both_sides():
    frame = _manifest()
    split = assign_split(frame, "patient", seed=3)
    assert patients_on_both_sides(frame, split) == 0


def test_paper_split_leaks_patients_and_it_is_counted():
    frame = _manifest()
    split = assign_split(frame, "paper", seed=3)
    assert patients_on_both_sides(frame, split) > 0


@pytest.mark.parametrize("strategy", ["paper", "patient"])
def test_same_seed_same_split_and_row_order_does_not_matter(strategy):
    frame = _manifest()
    first = assign_split(frame, strategy, seed=11)
    again = assign_split(frame, strategy, seed=11)
    shuffled = frame.sample(frac=1.0, random_state=5)
    reordered = assign_split(shuffled, strategy, seed=11)
    other = assign_split(frame, strategy, seed=12)
    assert first.equals(again)
    assert reordered.sort_index().equals(first.sort_index())
    assert not first.equals(other)


def test_official_uses_source_folders():
    frame = _manifest()
    split = assign_split(frame, "official")
    assert (split == frame["source_split"]).all()


def test_official_without_test_folder_is_refused():
    frame = _manifest().assign(source_split="")
    with pytest.raises(ValueError, match="official"):
        assign_split(frame, "official")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "random"}, "strategy='random'"),
        ({"strategy": "paper", "test_fraction": 0.0}, "test_fraction=0.0"),
        ({"strategy": "paper", "test_fraction": 1.0}, "test_fraction=1.0"),
    ],
)
def test_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        assign_split(_manifest(10, 10), **kwargs)


def test_patient_split_needs_patient_ids():
    with pytest.raises(ValueError, match="patient_id"):
        assign_split(_manifest(10, 10).drop(columns="patient_id"), "patient")


def test_split_summary_counts():
    frame = _manifest(20, 30)
    frame["split"] = assign_split(frame, "patient", seed=1)
    summary = split_summary(frame)
    assert sum(sum(v.values()) for v in summary.values()) == len(frame)
    assert set(summary) == {"train", "test"}
