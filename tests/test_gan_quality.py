"""DCGAN stabilisers (cxrcore/models/gan_augment.py, DCGAN options) and GAN quality (cxrcore/synthesis/gan_quality.py).

The augmentations are checked on images whose answer is known (a shifted bright pixel, a zeroed square), for
gradients (the generator is trained through them) and for reproducibility. The quality verdict is checked on
blank, collapsed and plausible sample sets, and the two-sample test on identical vs different distributions.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from cxrcore.config import GanTrainSettings
from cxrcore.models.dcgan import (
    DCGAN,
    build_discriminator,
    build_generator,
    detail_band,
    detail_mean_term,
    mode_seeking_term,
)
from cxrcore.models.gan_augment import AUGMENT_POLICIES, diff_augment, validate_policies
from cxrcore.synthesis.gan_quality import (
    QualityProbe,
    best_measurement,
    choose_published,
    judge,
    repeated_detail_share,
    sample_statistics,
    two_sample_accuracy,
)
from cxrcore.synthesis.images import resize_images

SEED = tf.constant([3, 4], dtype=tf.int32)


def _ones(batch: int = 4, size: int = 16) -> tf.Tensor:
    return tf.ones((batch, size, size, 1))


@pytest.mark.parametrize("policy", AUGMENT_POLICIES)
def test_each_policy_keeps_shape_and_passes_gradients(policy):
    images = tf.Variable(tf.random.stateless_uniform((3, 16, 16, 3), seed=[1, 2]))
    with tf.GradientTape() as tape:
        out = diff_augment(images, [policy], SEED)
        loss = tf.reduce_sum(out)
    gradient = tape.gradient(loss, images)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert gradient is not None and float(tf.reduce_sum(tf.abs(gradient))) > 0
    np.testing.assert_array_equal(out.numpy(), diff_augment(images, [policy], SEED).numpy())  # seeded


def test_translation_moves_content_and_fills_with_zeros():
    images = np.zeros((64, 16, 16, 1), np.float32)
    images[:, 8, 8, 0] = 1.0
    out = diff_augment(tf.constant(images), ["translation"], SEED).numpy()
    positions = [np.argwhere(image[..., 0] == 1.0) for image in out]
    assert all(len(found) == 1 for found in positions)  # the pixel moved, nothing else lit up
    shifts = np.array([found[0] - [8, 8] for found in positions])
    assert np.abs(shifts).max() <= 2 and len({tuple(shift) for shift in shifts}) > 5  # up to 1/8 of 16, varied
    assert float(diff_augment(_ones(), ["translation"], SEED).numpy().min()) in (0.0, 1.0)


def test_cutout_zeroes_one_square_of_half_the_side():
    out = diff_augment(_ones(8, 16), ["cutout"], SEED).numpy()[..., 0]
    zeroed = (out == 0).sum(axis=(1, 2))
    assert (zeroed > 0).all() and (zeroed <= 64).all()  # an 8x8 square, clipped at the border
    assert set(np.unique(out)) <= {0.0, 1.0}


def test_unknown_policy_and_settings_are_rejected():
    with pytest.raises(ValueError, match="Unknown DiffAugment policy 'zoom'"):
        validate_policies(["zoom"])
    with pytest.raises(ValueError, match="unknown DiffAugment policy 'zoom'"):
        GanTrainSettings(run_id="r", class_name="NORMAL", diff_augment="translation,zoom")
    settings = GanTrainSettings(run_id="r", class_name="NORMAL", diff_augment="cutout, translation")
    assert settings.diff_augment == "translation,cutout" and settings.augment_policies() == ("translation", "cutout")
    assert GanTrainSettings(run_id="r", class_name="NORMAL", diff_augment="none").augment_policies() == ()


@pytest.mark.parametrize(
    ("steps", "steps_per_epoch", "epochs"),
    [(None, 10, 100), (25, 10, 3), (30, 10, 3), (1, 10, 1), (2000, 41, 49)],
)
def test_step_budget_sets_the_epochs(steps, steps_per_epoch, epochs):
    settings = GanTrainSettings(run_id="r", class_name="NORMAL", steps=steps)
    assert settings.epochs_for(steps_per_epoch) == epochs
    assert settings.resolved_epochs() == (None if steps else 100)
    assert GanTrainSettings(run_id="r", class_name="NORMAL", steps="0", d_learning_rate="0").steps is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"label_smoothing": 0.5}, "label_smoothing"),
        ({"instance_noise": -0.1}, "instance_noise"),
        ({"instance_noise_steps": 0}, "instance_noise_steps"),
        ({"augment_policies": ["flip"]}, "DiffAugment"),
        ({"mode_seeking_weight": -0.1}, "mode_seeking_weight"),
        ({"mode_seeking_detail_weight": -0.1}, "mode_seeking_detail_weight"),
        ({"detail_mean_weight": -0.1}, "detail_mean_weight"),
    ],
)
def test_dcgan_validates_stabilisers(options, message):
    generator = build_generator(8, width_multiplier=1 / 8, output_size=16)
    discriminator = build_discriminator(input_size=16, width_multiplier=1 / 8)
    with pytest.raises(ValueError, match=message):
        DCGAN(discriminator, generator, latent_dim=8, **options)


def test_dcgan_trains_with_every_stabiliser():
    keras.utils.set_random_seed(0)
    generator = build_generator(8, width_multiplier=1 / 8, output_size=16)
    discriminator = build_discriminator(input_size=16, width_multiplier=1 / 8)
    gan = DCGAN(discriminator, generator, latent_dim=8, seed=0, label_smoothing=0.1,
                augment_policies=AUGMENT_POLICIES, instance_noise=0.1, instance_noise_steps=4,
                mode_seeking_weight=0.02, mode_seeking_detail_weight=0.03, detail_mean_weight=5.0)
    gan.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(1e-4, beta_1=0.5))
    before = [weight.copy() for weight in generator.get_weights()]
    images = np.random.default_rng(0).uniform(size=(8, 16, 16, 3)).astype(np.float32)
    history = gan.fit(images, batch_size=4, epochs=2, verbose=0)
    assert all(np.isfinite(history.history["d_loss"])) and all(np.isfinite(history.history["g_loss"]))
    assert any(not np.array_equal(a, b) for a, b in zip(before, generator.get_weights(), strict=True))
    assert int(gan.d_optimizer.iterations) == 4


@pytest.mark.parametrize(
    ("images", "latents", "expected"),
    [
        # Pairs (0, 2) and (1, 3): image distances 0.5 and 0.25, latent distances 1 and 0.5 -> ratios 0.5, 0.5.
        ([0.0, 0.0, 0.5, 0.25], [0.0, 0.0, 1.0, 0.5], 1 / (0.5 + 1e-5)),
        # Identical images from distinct latents: the term is at its maximum, 1e5.
        ([0.3, 0.3, 0.3, 0.3], [0.0, 1.0, 2.0, 3.0], 1e5),
        # An odd last row is left out: only the pair (0, 1).
        ([0.0, 1.0, 0.7], [0.0, 0.25, 9.0], 1 / (4.0 + 1e-5)),
    ],
)
def test_mode_seeking_term_pairs_the_halves_of_a_batch(images, latents, expected):
    images = np.asarray(images, np.float32).reshape(-1, 1, 1, 1) * np.ones((1, 4, 4, 3), np.float32)
    latents = np.asarray(latents, np.float32).reshape(-1, 1) * np.ones((1, 8), np.float32)
    assert float(mode_seeking_term(images, latents)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("pattern", "kept"),
    [
        ("flat", (0.0, 1e-6)),  # a constant image has no detail (away from the zero-padded border)
        ("ramp", (0.0, 1e-4)),  # nor has a linear ramp: the blur of a line is the line
        ("stripes", (0.8, 1.01)),  # stripes 2 px apart are almost all detail
        ("wide", (0.0, 0.35)),  # a half-image step keeps detail only near its edge
    ],
)
def test_detail_band_keeps_fine_structure(pattern, kept):
    columns = np.arange(32, dtype=np.float32)
    profile = {
        "flat": np.full(32, 0.4, np.float32),
        "ramp": columns / 31.0,
        "stripes": (columns % 2).astype(np.float32),
        "wide": (columns >= 16).astype(np.float32),
    }[pattern]
    images = np.broadcast_to(profile, (2, 32, 32)).astype(np.float32)[..., None].repeat(3, axis=-1)
    band = np.asarray(detail_band(images, 1.5))
    assert band.shape == images.shape
    inner = (slice(None), slice(6, 26), slice(6, 26))
    centred = images[inner] - images[inner].mean()
    energy = float((band[inner] ** 2).sum() / max((centred**2).sum(), 1e-12)) if pattern != "flat" else float(
        np.abs(band[inner]).max()
    )
    assert kept[0] <= energy <= kept[1], energy
    # Linear: the band of a difference is the difference of the bands.
    other = np.random.default_rng(0).uniform(size=images.shape).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(detail_band(images - other, 1.5)), band - np.asarray(detail_band(other, 1.5)), atol=1e-5
    )


def _ribs(count: int, seed: int, *, shifted: bool, size: int = 32) -> np.ndarray:
    """Horizontal "ribs" 6 px apart plus noise: at one height in every image, or at a random height in each."""
    rng = np.random.default_rng(seed)
    rows = np.arange(size, dtype=np.float32)[None, :, None]
    phase = rng.uniform(0.0, 2.0 * np.pi, (count, 1, 1)) if shifted else np.zeros((count, 1, 1))
    images = 0.5 + 0.2 * np.sin(2.0 * np.pi * rows / 6.0 + phase) + 0.05 * rng.normal(size=(count, size, size))
    return images.astype(np.float32)[..., None]


@pytest.mark.parametrize(
    ("generated", "expected"),
    [
        # The real set's ribs fall at random heights: its mean detail is faint.
        (lambda: _ribs(64, 1, shifted=True), (-0.05, 0.05)),  # the same distribution: about 0
        (lambda: _ribs(64, 1, shifted=False), (0.4, 1.2)),  # one rib cage in every sample: most of the energy
        (lambda: np.full((64, 32, 32, 1), 0.5, np.float32), (-0.05, 0.05)),  # no detail at all repeats nothing
        (lambda: 0.5 + 0.05 * np.random.default_rng(2).normal(size=(64, 32, 32, 1)), (-0.05, 0.05)),  # noise
        # Two identical images: the unbiased pair estimate sees their shared detail in full.
        (lambda: np.repeat(_ribs(1, 3, shifted=False), 2, axis=0), (0.4, 1.2)),
    ],
)
def test_detail_mean_term_reads_detail_repeated_across_the_batch(generated, expected):
    real = detail_band(tf.constant(_ribs(64, 0, shifted=True)), 1.5)
    term = float(detail_mean_term(detail_band(tf.constant(generated(), tf.float32), 1.5), real))
    assert expected[0] <= term <= expected[1], term


def test_detail_mean_term_is_unbiased_and_ignores_each_images_own_detail():
    """Over many draws of the same distribution the mean is 0 whatever the batch size (a biased estimate would
    grow as the batch shrinks), and the gradient does not pull an image's own detail towards 0."""
    real = detail_band(tf.constant(_ribs(8, 0, shifted=True)), 1.5)
    for batch in (2, 8):
        draws = [
            float(detail_mean_term(detail_band(tf.constant(_ribs(batch, seed, shifted=True)), 1.5), real))
            for seed in range(1, 200)
        ]
        assert abs(np.mean(draws)) < 3.0 * np.std(draws) / np.sqrt(len(draws)) + 1e-3, (batch, np.mean(draws))
    # Against real detail whose mean is 0, the gradient on each generated image is the other image's detail:
    # only the detail the two share is pushed on, not each image's own energy.
    generated = tf.Variable(np.asarray(detail_band(tf.constant(_ribs(2, 5, shifted=True)), 1.5)))
    with tf.GradientTape() as tape:
        term = detail_mean_term(generated, tf.concat([real, -real], axis=0))
    gradient = tape.gradient(term, generated).numpy()
    np.testing.assert_allclose(gradient[0] / np.abs(gradient[0]).max(),
                               generated.numpy()[1] / np.abs(generated.numpy()[1]).max(), atol=1e-4)


def test_detail_mean_term_stops_the_generator_repeating_one_pattern():
    """From the same start, with real images whose ribs fall at random heights, the term leaves the generated
    set's mean detail nearer the real one than the plain loss does."""
    real_images = np.repeat(_ribs(64, 0, shifted=True, size=16), 3, axis=-1)
    distances = {}
    for weight in (0.0, 20.0):
        keras.utils.set_random_seed(0)
        generator = build_generator(8, width_multiplier=1 / 8, output_size=16)
        discriminator = build_discriminator(input_size=16, width_multiplier=1 / 8)
        gan = DCGAN(discriminator, generator, latent_dim=8, seed=0, detail_mean_weight=weight)
        gan.compile(keras.optimizers.Adam(2e-3, beta_1=0.5), keras.optimizers.Adam(2e-3, beta_1=0.5))
        gan.fit(real_images, batch_size=16, epochs=8, verbose=0)
        samples = gan.generate(256, seed=1).astype(np.float32)
        real_detail = detail_band(tf.constant(real_images), gan.detail_sigma)
        distances[weight] = float(detail_mean_term(detail_band(tf.constant(samples), gan.detail_sigma), real_detail))
    assert distances[20.0] < 0.5 * distances[0.0], distances


@pytest.mark.parametrize("sigma", [0.0, -1.0])
def test_detail_band_rejects_a_non_positive_sigma(sigma):
    with pytest.raises(ValueError, match=f"sigma={sigma}"):
        detail_band(np.zeros((1, 8, 8, 1), np.float32), sigma)


@pytest.mark.parametrize("term", ["mode_seeking_weight", "mode_seeking_detail_weight"])
def test_mode_seeking_terms_spread_the_generator(term):
    """From the same start and data, each term leaves paired samples further apart than the plain loss does (the
    detail term measured on the samples' detail band, which it is about)."""
    images = np.repeat(_blobs(1, 3, size=16), 32, axis=0)[..., None].repeat(3, axis=-1)  # one real image
    spreads = {}
    for weight in (0.0, 0.5):
        keras.utils.set_random_seed(0)
        generator = build_generator(8, width_multiplier=1 / 8, output_size=16)
        discriminator = build_discriminator(input_size=16, width_multiplier=1 / 8)
        gan = DCGAN(discriminator, generator, latent_dim=8, seed=0, **{term: weight})
        gan.compile(keras.optimizers.Adam(2e-3, beta_1=0.5), keras.optimizers.Adam(2e-3, beta_1=0.5))
        gan.fit(images, batch_size=8, epochs=5, verbose=0)
        samples = gan.generate(64, seed=1).astype(np.float32)
        if term == "mode_seeking_detail_weight":
            samples = np.asarray(detail_band(samples, gan.detail_sigma))
        spreads[weight] = float(np.abs(samples[:32] - samples[32:]).mean())
    assert spreads[0.5] > 1.5 * spreads[0.0], spreads


def _blobs(count: int, seed: int, size: int = 32) -> np.ndarray:
    """Images with a random bright disc on a noisy background: a stand-in for a varied real set."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = rng.uniform(0.0, 0.2, (count, size, size))
    for image in images:
        cy, cx, r = rng.uniform(8, 24), rng.uniform(8, 24), rng.uniform(4, 9)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] += 0.7
    return np.clip(images, 0, 1).astype(np.float32)


def test_two_sample_accuracy_separates_only_different_sets():
    real = _blobs(200, 0)
    assert two_sample_accuracy(real, _blobs(200, 1)) < 0.7
    assert two_sample_accuracy(real, np.full((200, 32, 32), 0.5, np.float32) + 0.01 * _blobs(200, 2)) > 0.95
    assert two_sample_accuracy(real[:4], real[:4]) is None


def _ribbed(count: int, seed: int, *, fixed_ribs: bool, size: int = 32) -> np.ndarray:
    """Blob "chests" with horizontal "ribs" (period 6 px): at one height in every image, or at random heights."""
    rng = np.random.default_rng(seed)
    rows = np.arange(size)[None, :, None]
    phases = np.zeros(count) if fixed_ribs else rng.uniform(0, 2 * np.pi, count)
    ribs = 0.3 * np.sin(2 * np.pi * rows / 6.0 + phases[:, None, None])
    return np.clip(_blobs(count, seed, size) + ribs, 0, 1).astype(np.float32)


@pytest.mark.parametrize(
    ("images", "low", "high"),
    [
        (np.repeat(_blobs(1, 3), 20, axis=0), 1.0, 1.0),  # one image repeated
        (np.random.default_rng(0).uniform(0, 1, (8, 32, 32)), 0.0, 0.05),  # independent noise, few images
        (np.random.default_rng(1).uniform(0, 1, (400, 32, 32)), 0.0, 0.01),  # ... and many
        (_ribbed(100, 0, fixed_ribs=True), 0.4, 1.0),  # varied outlines, the same ribs in every image
        (_ribbed(100, 0, fixed_ribs=False), 0.0, 0.05),  # the ribs at different heights
    ],
    ids=["identical", "noise-8", "noise-400", "fixed-ribs", "varied-ribs"],
)
def test_repeated_detail_share_measures_what_every_image_repeats(images, low, high):
    share = repeated_detail_share(images)
    assert low <= share <= high
    assert repeated_detail_share((images * 255).round().astype(np.uint8)) == pytest.approx(share, abs=0.02)


def test_repeated_detail_share_needs_two_images_with_detail():
    assert repeated_detail_share(_blobs(1, 0)) is None
    assert repeated_detail_share(np.full((5, 16, 16), 0.4, np.float32)) is None
    # Measured at a given side: the same as resizing first, whatever the input's scale.
    ribbed = _ribbed(40, 3, fixed_ribs=True, size=64)
    assert repeated_detail_share(ribbed, size=64) == repeated_detail_share(ribbed)
    resized = repeated_detail_share(resize_images(ribbed, 32, method="area"))
    assert repeated_detail_share((ribbed * 255).round().astype(np.uint8), size=32) == pytest.approx(resized, abs=0.02)
    probe = QualityProbe(_ribbed(64, 1, fixed_ribs=False), reference_size=64, seed=0)
    row = probe.measure(_ribbed(64, 2, fixed_ribs=True))
    assert row["repeated_detail_share"] > 0.4 > 0.05 > row["real_repeated_detail_share"]


def test_judge_flags_blank_collapsed_and_stalled_gans():
    probe = QualityProbe(_blobs(64, 0), reference_size=64, seed=0)
    untrained = {"step": 0, **probe.measure(np.full((64, 32, 32), 0.5, np.float32))}
    good = {"step": 500, **probe.measure(_blobs(64, 1))}
    blank = {"step": 500, **probe.measure(np.zeros((64, 32, 32), np.float32))}
    collapsed = {"step": 500, **probe.measure(np.repeat(_blobs(1, 5), 64, axis=0))}

    assert judge([untrained, good])["status"] == "ok" and good["kid"] < untrained["kid"]
    verdict = judge([untrained, blank])
    assert verdict["status"] == "flagged" and any("near-constant" in reason for reason in verdict["reasons"])
    assert any("collapsed" in reason for reason in judge([untrained, collapsed])["reasons"])
    stalled = judge([good, {**good, "step": 1000}])
    assert stalled["status"] == "flagged" and "KID never improved" in stalled["reasons"][0]
    assert judge([good])["status"] == "ok"  # one measurement cannot show a stall
    assert sample_statistics(np.zeros((3, 8, 8), np.uint8)) == {"mean": 0.0, "image_std": 0.0, "sample_std": 0.0}
    with pytest.raises(ValueError, match="trajectory=\\[\\]"):
        judge([])


@pytest.mark.parametrize(
    ("kids", "broke_down"),
    [
        ((8.4, 0.16, 0.91), True),  # a late breakdown (seen standalone on PNEUMONIA: dark checkerboards)
        ((8.4, 0.16, 0.05), False),  # still improving
        ((8.4, 0.10, 0.18), False),  # worse, but under 2x the best
        ((8.4, 0.005, 0.012), False),  # 2.4x the best, but within the estimate's noise
        ((8.4, 0.02, 0.30, 0.05), False),  # recovered: judged on the published (last) generator
        ((8.4, 0.02, 0.03, 0.09), True),  # the best need not be the step before
    ],
)
def test_judge_flags_a_late_breakdown(kids, broke_down):
    rows = [
        {"step": 500 * index, "kid": kid, "mean": 0.5, "image_std": 0.2, "sample_std": 0.1}
        for index, kid in enumerate(kids)
    ]
    verdict = judge(rows)
    assert (verdict["status"] == "flagged") is broke_down
    assert any(reason.startswith("broke down") for reason in verdict["reasons"]) is broke_down
    if broke_down:
        best = min(kids[:-1])
        assert f"vs {best:.4f} at step {500 * kids.index(best)}" in verdict["reasons"][0]
    assert verdict["thresholds"]["max_kid_regression"] == 2.0


def _trajectory(kids):
    return [
        {"step": 100 * index, "epoch": index, "kid": kid, "mean": 0.5, "image_std": 0.2, "sample_std": 0.1}
        for index, kid in enumerate(kids)
    ]


@pytest.mark.parametrize(
    ("kids", "rule", "published_step", "why"),
    [
        ((8.4, 0.16, 0.91), "last", 200, None),  # the paper: whatever the last generator drew
        ((8.4, 0.16, 0.91), "guarded", 100, "broke down: KID 0.9100 at step 200"),
        ((8.4, 0.16, 0.91), "best", 100, "lowest KID"),
        ((8.4, 0.10, 0.05, 0.06), "guarded", 300, None),  # a little worse is not a breakdown: the last stays
        ((8.4, 0.10, 0.05, 0.06), "best", 200, "lowest KID"),  # best takes the minimum wherever it is
        ((8.4, 0.10, 0.05, 0.05), "best", 200, "lowest KID"),  # ties: the earliest
        ((8.4, 0.02, 0.30, 0.05), "guarded", 300, None),  # recovered by the end
        ((8.4, 0.02, 0.03, 0.09), "guarded", 100, "vs 0.0200 at step 100"),  # the best need not be the step before
        ((0.5, 0.9, 2.0), "guarded", 100, "broke down"),  # never improved: still the best trained one
        ((0.5, 0.9, 2.0), "best", 100, "lowest KID"),  # the untrained generator is never published
        ((8.4,), "best", 0, None),  # only the untrained measurement: nothing to choose
        ((8.4, None, 0.2), "best", 200, None),  # unscored rows are skipped
        ((8.4, 0.1, float("nan")), "guarded", 100, "broke down: KID nan at step 200"),  # diverged to NaN
        ((8.4, float("nan"), 0.2), "best", 200, None),  # a NaN measurement is never the best
    ],
)
def test_choose_published_picks_the_measured_generator_by_rule(kids, rule, published_step, why):
    rows = _trajectory(kids)
    published = choose_published(rows, rule)
    assert published["rule"] == rule and published["step"] == published_step
    assert published["index"] == published_step // 100 and published["epoch"] == published_step // 100
    assert published["kid"] == rows[published["index"]]["kid"]
    assert published["last_step"] == rows[-1]["step"] and published["last_kid"] is rows[-1]["kid"]
    assert published["replaced_last"] is (published["index"] != len(rows) - 1)
    assert (published["reason"] is None) is (why is None)
    if why is not None:
        assert why in published["reason"]
    # The verdict on the trajectory up to the published generator never holds a later breakdown against it.
    verdict = judge(rows[: published["index"] + 1])
    assert not any(reason.startswith("broke down") for reason in verdict["reasons"]) or rule == "last"


def test_choose_published_refuses_unknown_rules_and_empty_trajectories():
    with pytest.raises(ValueError, match="Received: rule='newest'"):
        choose_published(_trajectory((1.0, 0.5)), "newest")
    with pytest.raises(ValueError, match="trajectory=\\[\\]"):
        choose_published([], "guarded")
    assert best_measurement(_trajectory((1.0,))) is None


@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_quality_monitor_keeps_the_measured_networks_with_the_weight_average(tmp_path):
    """record.best holds the generator as measured (the moving average) and the discriminator, at the lowest KID."""
    from cxrcore.training.gan import QualityMonitor
    from cxrcore.training.gan_state import MeasuredNetworks, TrainingRecord

    generator = build_generator(8, width_multiplier=0.125, output_size=32, channels=1)
    discriminator = build_discriminator(input_size=32, channels=1, width_multiplier=0.125)
    model = DCGAN(discriminator, generator, latent_dim=8, seed=0)
    d_opt, g_opt = keras.optimizers.Adam(1e-2), keras.optimizers.Adam(1e-2, use_ema=True, ema_momentum=0.5)
    model.compile(d_optimizer=d_opt, g_optimizer=g_opt)
    model.fit(np.random.default_rng(0).random((8, 32, 32, 1)).astype("float32"), batch_size=4, epochs=1, verbose=0)

    class ScriptedProbe:
        kids = iter([0.5, 0.2, 0.3])

        def measure(self, generated):
            stats = sample_statistics(generated)
            return {**stats, "kid": next(self.kids), "two_sample_accuracy": None}

    record = TrainingRecord(samples_dir=tmp_path / "samples")
    monitor = QualityMonitor(record, ScriptedProbe(), every=1, steps_per_epoch=2, epochs=3, num_images=4, seed=0,
                             logger=_Log())
    monitor.set_model(model)
    with model.averaged_generator() as averaged:
        expected_generator = [np.array(value) for value in averaged.get_weights()]
    assert any(not np.array_equal(a, b) for a, b in zip(expected_generator, generator.get_weights(), strict=True))
    monitor.on_epoch_end(0)  # step 2, KID 0.5: the first trained measurement is the best so far
    monitor.on_epoch_end(1)  # step 4, KID 0.2: better
    best = record.best
    monitor.on_epoch_end(2)  # step 6, KID 0.3: worse, nothing kept
    assert record.best is best and (best.step, best.epoch, best.kid) == (4, 2, 0.2)
    for kept, expected in zip(best.generator, expected_generator, strict=True):
        np.testing.assert_array_equal(kept, expected)
    for kept, expected in zip(best.discriminator, discriminator.get_weights(), strict=True):
        np.testing.assert_array_equal(kept, expected)
    restored = MeasuredNetworks.from_arrays(best.arrays(), "a checkpoint")
    assert (restored.step, restored.epoch, restored.kid) == (4, 2, 0.2)
    assert all(np.array_equal(a, b) for a, b in zip(restored.generator, best.generator, strict=True))
    with pytest.raises(ValueError, match="lacks its measured step"):
        MeasuredNetworks.from_arrays({"g_00000": np.zeros(2)}, "epoch-0003")


class _Log:
    def __init__(self) -> None:
        self.events: list[str] = []

    def info(self, event: str, **_fields) -> None:
        self.events.append(event)

    def warning(self, event: str, **_fields) -> None:
        self.events.append(event)


@pytest.mark.parametrize(
    ("train_images", "batch_size", "replicas", "weight", "expected"),
    [
        (100, 32, 1, 0.02, (32, 3)),
        (100, 4, 2, 0.02, (4, 25)),  # 2 images per replica: pairs exist
        (3, 32, 1, 0.02, (3, 1)),  # batch reduced to the class's 3 images: one pair
        (100, 2, 2, 0.02, "1 per replica"),  # one image per replica: no pair
        (1, 32, 1, 0.02, "1 per replica"),
        (1, 32, 1, 0.0, (1, 1)),  # without the term a batch of one trains
    ],
)
@pytest.mark.parametrize("term", ["mode_seeking_weight", "mode_seeking_detail_weight", "detail_mean_weight"])
def test_plan_batches_needs_pairs_for_the_mode_seeking_term(train_images, batch_size, replicas, weight, expected, term):
    from cxrcore.training.gan import plan_batches

    settings = GanTrainSettings(run_id="r", class_name="NORMAL", batch_size=batch_size, **{term: weight})
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=f"gets {expected}.*{term}=0.02"):
            plan_batches(settings, train_images, replicas, _Log())
        return
    plan = plan_batches(settings, train_images, replicas, _Log())
    assert (plan.batch_size, plan.steps_per_epoch) == expected
