"""tf.data pipeline: shapes, ranges, determinism, augmentation bounds, validation."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from cxrcore.data.pipeline import AugmentConfig, make_dataset, resize_images


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(10, 40, 40), dtype=np.uint8)
    labels = np.array([0, 1] * 5)
    return images, labels


def _collect(dataset):
    xs, ys = [], []
    for x, y in dataset:
        xs.append(x.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)


@pytest.mark.parametrize(
    ("image_size", "channels", "scale", "batch_size", "drop_remainder", "expected_batches"),
    [
        (32, 3, "raw", 4, False, 3),
        (16, 1, "unit", 4, True, 2),
        (40, 3, "unit", 10, False, 1),
    ],
)
def test_shapes_and_ranges(arrays, image_size, channels, scale, batch_size, drop_remainder, expected_batches):
    images, labels = arrays
    dataset = make_dataset(
        images, labels, image_size=image_size, channels=channels, scale=scale, batch_size=batch_size,
        drop_remainder=drop_remainder,
    )
    batches = list(dataset)
    assert len(batches) == expected_batches
    x, y = batches[0]
    assert x.shape == (batch_size, image_size, image_size, channels)
    assert x.dtype.name == "float32" and y.dtype.name == "float32"
    top = 255.0 if scale == "raw" else 1.0
    assert float(x.numpy().min()) >= 0.0 and float(x.numpy().max()) <= top
    if channels == 3:
        np.testing.assert_array_equal(x.numpy()[..., 0], x.numpy()[..., 2])


def test_unshuffled_order_and_values_are_preserved(arrays):
    images, labels = arrays
    x, y = _collect(make_dataset(images, labels, image_size=40, channels=1, batch_size=3))
    np.testing.assert_array_equal(x[..., 0], images.astype(np.float32))
    np.testing.assert_array_equal(y, labels)


def test_images_only(arrays):
    images, _ = arrays
    batch = next(iter(make_dataset(images, image_size=20, batch_size=5)))
    assert batch.shape == (5, 20, 20, 3)


def test_shuffle_and_augmentation_are_deterministic_by_seed(arrays):
    images, labels = arrays
    kwargs = dict(image_size=32, batch_size=4, shuffle=True, augment=True)
    first = _collect(make_dataset(images, labels, seed=3, **kwargs))
    again = _collect(make_dataset(images, labels, seed=3, **kwargs))
    other = _collect(make_dataset(images, labels, seed=4, **kwargs))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])
    # Shuffling permutes, it never loses or duplicates a label.
    assert sorted(first[1].tolist()) == sorted(labels.tolist())


def test_reshuffles_each_epoch(arrays):
    images, labels = arrays
    dataset = make_dataset(images, labels, image_size=16, batch_size=10, shuffle=True, seed=1)
    epoch_one = next(iter(dataset))[0].numpy()
    epoch_two = next(iter(dataset))[0].numpy()
    assert not np.array_equal(epoch_one, epoch_two)


def test_augmentation_changes_pixels_but_stays_in_range(arrays):
    images, labels = arrays
    plain, _ = _collect(make_dataset(images, labels, image_size=32, batch_size=10))
    augmented, _ = _collect(make_dataset(images, labels, image_size=32, batch_size=10, augment=True, seed=0))
    assert not np.allclose(plain, augmented)
    assert augmented.min() >= 0.0 and augmented.max() <= 255.0


def test_preprocess_hook_runs_last(arrays):
    images, labels = arrays
    x, _ = next(iter(make_dataset(images, labels, image_size=16, batch_size=2, scale="unit", preprocess=lambda b: b * 2 - 1)))
    assert x.numpy().min() >= -1.0 and x.numpy().max() <= 1.0 and x.numpy().min() < 0


def test_resize_images_once():
    images = np.full((3, 64, 64), 200, dtype=np.uint8)
    out = resize_images(images, 16)
    assert out.shape == (3, 16, 16) and out.dtype == np.uint8 and (out == 200).all()
    assert resize_images(images, 64) is images


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": 2}, "channels=2"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"scale": "imagenet"}, "scale='imagenet'"),
    ],
)
def test_validation(arrays, kwargs, message):
    images, labels = arrays
    with pytest.raises(ValueError, match=message):
        make_dataset(images, labels, image_size=16, **{"batch_size": 2, **kwargs})


def test_augment_config_validation():
    with pytest.raises(ValueError, match="max_shift"):
        AugmentConfig(max_shift=0.7)
    with pytest.raises(ValueError, match="contrast_range"):
        AugmentConfig(contrast_range=(1.2, 1.0))


def test_label_mismatch_and_empty_refused(arrays):
    images, labels = arrays
    with pytest.raises(ValueError, match="len\\(labels\\)"):
        make_dataset(images, labels[:3], image_size=16, batch_size=2)
    with pytest.raises(ValueError, match="at least one image"):
        make_dataset(images[:0], image_size=16, batch_size=2)
