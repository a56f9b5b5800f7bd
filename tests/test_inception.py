"""Tests of the InceptionV3 KID/FID of synthetic sets (cxrcore/synthesis/inception.py).

No ImageNet weights here: the extractor is exercised with an InceptionV3 weights file the tests write themselves
(seeded random initialisation), which is exactly the path a user's own weights file takes. FID is checked against
the textbook formula with ``scipy.linalg.sqrtm`` on small dimensions and against closed forms.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path

import numpy as np
import pytest
from scipy import linalg

from cxrcore.synthesis.inception import (
    build_inception_extractor,
    feature_scores,
    frechet_distance,
    inception_features,
    inception_quality,
)
from tests.helpers import write_inception_weights

SMALL = 75  # InceptionV3's smallest input: the tests' extractor side (299 in production)


def textbook_fid(a: np.ndarray, b: np.ndarray) -> float:
    """FID as pytorch-fid computes it (sqrtm of the covariance product)."""
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = linalg.sqrtm(cov_a @ cov_b).real
    return float((mean_a - mean_b) @ (mean_a - mean_b) + np.trace(cov_a + cov_b - 2.0 * root))


@pytest.mark.parametrize(
    ("rows_a", "rows_b", "dim"),
    [(50, 60, 5), (200, 150, 12), (10, 8, 20), (3, 40, 6)],  # the last two: singular covariances (n < d)
)
def test_frechet_distance_matches_the_textbook_formula(rows_a, rows_b, dim):
    rng = np.random.default_rng(rows_a + dim)
    a = rng.standard_normal((rows_a, dim)) @ rng.standard_normal((dim, dim))
    b = 0.5 + rng.standard_normal((rows_b, dim)) * np.linspace(0.5, 2.0, dim)
    assert frechet_distance(a, b) == pytest.approx(textbook_fid(a, b), rel=1e-6, abs=1e-8)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 8)) * np.arange(1, 9)
    shift = np.arange(8, dtype=np.float64)
    # Same covariance, shifted mean: the squared shift; doubled features: |mu|^2 + Tr(S).
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-9)
    covariance = np.cov(a, rowvar=False)
    expected = float(a.mean(axis=0) @ a.mean(axis=0) + np.trace(covariance))
    assert frechet_distance(a, 2.0 * a) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        (np.zeros((4, 3)), np.zeros((4, 2)), "one d"),
        (np.zeros(4), np.zeros((4, 1)), "one d"),
        (np.zeros((1, 3)), np.zeros((4, 3)), "at least 2 rows"),
        (np.full((4, 3), np.nan), np.zeros((4, 3)), "finite"),
    ],
)
def test_frechet_distance_rejects_bad_features(a, b, message):
    with pytest.raises(ValueError, match=message):
        frechet_distance(a, b)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_inception_weights(tmp_path_factory.mktemp("inception") / "inceptionv3.weights.h5")


@pytest.fixture(scope="module")
def extractor(weights_file):
    return build_inception_extractor(str(weights_file), input_size=SMALL)


def test_extractor_loads_a_weights_file_and_maps_images_to_2048_features(weights_file, extractor):
    import keras

    assert extractor.input_shape == (None, SMALL, SMALL, 3) and extractor.output_shape == (None, 2048)
    # The file's arrays are the model's: a second load gives the same features, a random model does not.
    again = build_inception_extractor(str(weights_file), input_size=SMALL)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(3, 40, 52), dtype=np.uint8)
    features = inception_features(extractor, images)
    assert features.shape == (3, 2048) and features.dtype == np.float64 and np.isfinite(features).all()
    np.testing.assert_allclose(inception_features(again, images), features, rtol=1e-5, atol=1e-6)
    keras.utils.set_random_seed(7)
    other = keras.applications.InceptionV3(include_top=False, weights=None, input_shape=(SMALL, SMALL, 3),
                                           pooling="avg")
    assert not np.allclose(inception_features(other, images), features, rtol=1e-3, atol=1e-4)
    # uint8 and [0, 1] floats are the same images; batching does not change a row.
    np.testing.assert_allclose(inception_features(extractor, images.astype(np.float32) / 255.0), features,
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(inception_features(extractor, images, batch_size=1), features, rtol=1e-4, atol=1e-5)
    assert inception_features(extractor, images[:0]).shape == (0, 2048)
    # InceptionV3's own input: [0, 255] RGB resized to its side, then x / 127.5 - 1 (inception_v3.preprocess_input).
    import tensorflow as tf

    resized = tf.image.resize(images[..., None].astype(np.float32), (SMALL, SMALL), antialias=True).numpy()
    manual = extractor(np.repeat(resized, 3, axis=-1) / 127.5 - 1.0, training=False)
    np.testing.assert_allclose(features, np.asarray(manual), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("weights", "input_size", "message"),
    [
        ("imagenet", 74, "input_size"),
        ("", SMALL, "weights"),
        ("/nonexistent/inceptionv3.weights.h5", SMALL, "does not exist"),
        ("model.keras", SMALL, r"\.h5"),
    ],
)
def test_extractor_rejects_bad_arguments(weights, input_size, message):
    with pytest.raises(ValueError, match=message):
        build_inception_extractor(weights, input_size=input_size)


def test_extractor_rejects_a_file_of_another_network(tmp_path):
    import keras

    path = tmp_path / "vgg.weights.h5"
    keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(path)
    with pytest.raises(ValueError, match="vgg.weights.h5"):
        build_inception_extractor(str(path), input_size=SMALL)


def test_inception_quality_ranks_a_copy_above_noise(extractor):
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:48, 0:48]
    real = np.stack([
        np.clip(128 + 90 * np.sin(xx / (3 + k % 5)) * np.cos(yy / 7) + rng.normal(0, 8, (48, 48)), 0, 255)
        for k in range(24)
    ]).astype(np.uint8)
    noise = rng.integers(0, 256, size=(12, 48, 48), dtype=np.uint8)
    copies = real[:12]
    result = inception_quality(extractor, kept=copies, generated=noise, real=real, name="test-extractor",
                               description="test", seed=0)
    assert result["status"] == "measured" and result["extractor"] == "test-extractor"
    assert (result["num_real"], result["input_size"]) == (24, SMALL)
    assert result["kept"]["num_images"] == 12 and result["all_generated"]["num_images"] == 12
    assert result["kept"]["kid"] < result["all_generated"]["kid"]
    assert result["kept"]["fid"] < result["all_generated"]["fid"]
    one = inception_quality(extractor, kept=copies[:1], generated=noise, real=real, name="x", description="x",
                            seed=0)
    assert one["kept"]["kid"] is None and one["kept"]["fid"] is None


def test_feature_scores_of_a_diverged_generator_are_not_a_crash():
    """NaN images (a diverged generator) give NaN features: no FID and a NaN KID, which the quality rules flag."""
    rng = np.random.default_rng(3)
    real = rng.standard_normal((20, 6))
    scores = feature_scores(np.full((8, 6), np.nan), real, seed=0)
    assert scores["fid"] is None and not np.isfinite(scores["kid"])
    assert feature_scores(real[:1], real, seed=0)["fid"] is None
    assert feature_scores(real[:10], real[10:], seed=0)["fid"] == pytest.approx(frechet_distance(real[:10], real[10:]))
