"""Tests for cxrcore.models: DCGAN, custom CNN and transfer-learning classifiers.

CPU only, no network: every backbone is built with `weights=None` (or a weights
file the test writes) at its minimum input size, once per module.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras.src.legacy.saving import legacy_h5_format  # noqa: E402
from PIL import Image  # noqa: E402

from cxrcore.ml.model_io import fetch_verified, inference_copy, put_verified, save_model  # noqa: E402
from cxrcore.models import (  # noqa: E402
    ALL_MODELS,
    BACKBONES,
    DCGAN,
    DISCRIMINATOR_PAPER_PARAMS,
    GENERATOR_PAPER_PARAMS,
    PAPER_PARAMS,
    BackbonePreprocessing,
    GANSampleGrid,
    GrayscaleToRGB,
    build_classifier,
    build_custom_cnn,
    build_discriminator,
    build_generator,
    build_transfer_model,
    classifier_input_range,
    classifier_min_input_size,
    custom_cnn_trainable_params,
    default_gan_optimizers,
    encode_png,
    get_base_model,
    grayscale_to_rgb,
    load_base_weights,
    make_grid,
    model_summary_counts,
    network_input_range,
    paper_optimizer,
    preprocess,
    to_uint8,
)
from cxrcore.models.transfer import (  # noqa: E402
    FROM_SCRATCH_BATCH_NORM_MOMENTUM,
    initialise_plain_base,
)
from cxrcore.storage import IntegrityError, open_store, sha256_file  # noqa: E402

# Keras' TF backend trips NumPy 2's `__array__(copy=...)` deprecation on every
# tensor-to-array conversion; it is noise for these tests.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

REPO_ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(1234)


def _trainable(model: keras.Model) -> int:
    return model_summary_counts(model)[1]


def _pixels(size: int, batch: int = 2) -> np.ndarray:
    return RNG.uniform(0.0, 255.0, size=(batch, size, size, 3)).astype(np.float32)


def _assert_per_image_and_input_dependent(model: keras.Model, pixels: np.ndarray, outputs: np.ndarray) -> None:
    """In inference, each image's features depend on that image alone, and different images give different ones.

    Checked on the features the output layer reads (relative to their scale: an untrained base can make them
    tiny) and on the probabilities. Fails for a model that ignores its input (dead head, constant output) or
    couples the images of a batch (BatchNormalization left in training mode, a reduction over the batch axis).
    """
    features_model = keras.Model(model.input, model.layers[-1].input)
    features = features_model(pixels, training=False).numpy()
    scale = float(np.abs(features).max())
    assert scale > 0.0, "the output layer reads only zeros"
    assert np.abs(features[0] - features[1]).max() > 1e-3 * scale, "two different images give the same features"
    for index in range(len(pixels)):
        alone = pixels[index : index + 1]
        np.testing.assert_allclose(features_model(alone, training=False).numpy()[0], features[index], atol=1e-4 * scale)
        np.testing.assert_allclose(model(alone, training=False).numpy()[0], outputs[index], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def transfer_models():
    """Builds each backbone's transfer model once (weights=None, minimum size)."""
    cache: dict[str, keras.Model] = {}

    def get(name: str) -> keras.Model:
        if name not in cache:
            keras.utils.set_random_seed(0)
            cache[name] = build_transfer_model(name, input_size=BACKBONES[name].min_input_size)
        return cache[name]

    return get


def _tiny_gan(seed: int = 3) -> DCGAN:
    keras.utils.set_random_seed(0)
    generator = build_generator(8, width_multiplier=0.125, output_size=16)
    discriminator = build_discriminator(input_size=16, width_multiplier=0.125)
    gan = DCGAN(discriminator, generator, latent_dim=8, seed=seed)
    gan.compile()
    return gan


# --------------------------------------------------------------------------- DCGAN networks


def test_generator_matches_paper_parameter_count():
    generator = build_generator()
    assert _trainable(generator) == GENERATOR_PAPER_PARAMS == 3_750_275
    assert generator.input_shape == (None, 100)
    assert generator.output_shape == (None, 64, 64, 3)
    assert [layer.name for layer in generator.layers][1:3] == ["dense", "reshape"]
    assert generator.get_layer("dense").units == 8192
    assert generator.layers[-1].dtype_policy.name == "float32"


def test_generator_dense_leaky_relu_option_keeps_parameter_count():
    generator = build_generator(dense_leaky_relu=True)
    assert _trainable(generator) == GENERATOR_PAPER_PARAMS
    assert isinstance(generator.get_layer("dense_leaky_relu"), keras.layers.LeakyReLU)


def test_discriminator_matches_paper_parameter_count():
    discriminator = build_discriminator()
    assert _trainable(discriminator) == DISCRIMINATOR_PAPER_PARAMS == 404_801
    assert discriminator.input_shape == (None, 64, 64, 3)
    assert discriminator.output_shape == (None, 1)
    assert discriminator.get_layer("dropout").rate == pytest.approx(0.2)
    assert discriminator.layers[-1].activation is keras.activations.linear
    assert discriminator.layers[-1].dtype_policy.name == "float32"


@pytest.mark.parametrize(
    ("latent_dim", "width_multiplier", "output_size", "channels"),
    [(100, 1.0, 64, 3), (16, 0.25, 32, 3), (8, 0.125, 16, 1), (8, 0.0625, 128, 3)],
)
def test_generator_shapes(latent_dim, width_multiplier, output_size, channels):
    generator = build_generator(
        latent_dim, width_multiplier=width_multiplier, output_size=output_size, channels=channels
    )
    noise = RNG.standard_normal((2, latent_dim)).astype(np.float32)
    images = generator(noise, training=False).numpy()
    assert images.shape == (2, output_size, output_size, channels)
    assert images.min() >= 0.0 and images.max() <= 1.0
    # Each image is a function of its own noise vector: different noise, different image; same noise, same
    # image, whatever else is in the batch (a collapsed or batch-coupled generator fails here).
    assert not np.allclose(images[0], images[1], rtol=0.0, atol=1e-6)
    alone = generator(noise[1:], training=False).numpy()
    np.testing.assert_allclose(alone[0], images[1], rtol=1e-5, atol=1e-6)
    start = output_size // 8
    assert generator.get_layer("reshape").output.shape[1:3] == (start, start)


@pytest.mark.parametrize(
    ("input_size", "width_multiplier", "channels"), [(64, 1.0, 3), (32, 0.25, 3), (16, 0.125, 1)]
)
def test_discriminator_shapes(input_size, width_multiplier, channels):
    discriminator = build_discriminator(
        input_size=input_size, width_multiplier=width_multiplier, channels=channels
    )
    images = RNG.random((3, input_size, input_size, channels)).astype(np.float32)
    assert discriminator(images).shape == (3, 1)


@pytest.mark.parametrize(
    ("builder", "kwargs", "message"),
    [
        (build_generator, {"output_size": 60}, "output_size=60"),
        (build_generator, {"output_size": 8}, "output_size=8"),
        (build_generator, {"width_multiplier": 0.0}, "width_multiplier=0.0"),
        (build_generator, {"channels": 2}, "channels=2"),
        (build_discriminator, {"input_size": 20}, "input_size=20"),
        (build_discriminator, {"dropout_rate": 1.0}, "dropout_rate=1.0"),
    ],
)
def test_gan_builders_validate_arguments(builder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        builder(**kwargs)


# --------------------------------------------------------------------------- DCGAN training


def test_dcgan_fit_is_finite_reports_trackers_and_is_deterministic():
    images = RNG.random((8, 16, 16, 3)).astype(np.float32)
    histories = []
    grids: list[tuple[int, bytes]] = []
    for _ in range(2):
        gan = _tiny_gan(seed=3)
        sink_calls: list[tuple[int, bytes]] = []
        grid_callback = GANSampleGrid(
            lambda epoch, png: sink_calls.append((epoch, png)), num_images=6, columns=3
        )
        history = gan.fit(
            images, batch_size=4, epochs=2, verbose=0, shuffle=False, callbacks=[grid_callback]
        )
        histories.append(history.history)
        grids.append(sink_calls)
    history = histories[0]
    assert set(history) == {
        "d_loss", "g_loss", "d_real_accuracy", "d_fake_accuracy", "d_grad_norm_max", "g_grad_norm_max"
    }
    assert all(len(values) == 2 and np.all(np.isfinite(values)) for values in history.values())
    assert all(value > 0.0 for value in history["d_grad_norm_max"] + history["g_grad_norm_max"])
    # BCE of an untrained discriminator is close to ln(2).
    assert 0.4 < history["d_loss"][0] < 1.0
    assert histories[0] == histories[1]

    sink_calls = grids[0]
    assert [epoch for epoch, _ in sink_calls] == [0, 1]
    for _, png in sink_calls:
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG"
        # 2 rows x 3 columns of 16 px cells, 2 px padding.
        assert image.size == (3 * 18 + 2, 2 * 18 + 2)
        assert image.mode == "RGB"
    assert grids[0][0][1] == grids[1][0][1]

    other_seed = _tiny_gan(seed=4).fit(images, batch_size=4, epochs=1, verbose=0, shuffle=False)
    assert other_seed.history["g_loss"][0] != history["g_loss"][0]


def test_dcgan_generate_and_score():
    gan = _tiny_gan()
    images = gan.generate(5, seed=11, batch_size=2)
    assert images.shape == (5, 16, 16, 3) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_array_equal(images, gan.generate(5, seed=11, batch_size=2))
    pixels = gan.generate(5, seed=11, batch_size=2, as_uint8=True)
    assert pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, to_uint8(images))
    assert gan.generate(0).shape == (0, 16, 16, 3)

    probabilities = gan.score(images, batch_size=2)
    assert probabilities.shape == (5,)
    logits = gan.discriminator(images, training=False).numpy().reshape(-1)
    np.testing.assert_allclose(probabilities, 1.0 / (1.0 + np.exp(-logits)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gan.score(pixels), probabilities, atol=1e-2)


def test_dcgan_validates_configuration():
    generator = build_generator(8, width_multiplier=0.125, output_size=16)
    discriminator = build_discriminator(input_size=16, width_multiplier=0.125)
    with pytest.raises(ValueError, match="latent_dim=9"):
        DCGAN(discriminator, generator, latent_dim=9)
    gan = DCGAN(discriminator, generator, latent_dim=8)
    optimizer = keras.optimizers.Adam()
    with pytest.raises(ValueError, match="distinct"):
        gan.compile(optimizer, optimizer)


def test_default_gan_optimizers():
    d_optimizer, g_optimizer = default_gan_optimizers()
    assert d_optimizer is not g_optimizer
    for optimizer in (d_optimizer, g_optimizer):
        assert isinstance(optimizer, keras.optimizers.Adam)
        assert float(optimizer.learning_rate) == pytest.approx(1e-4)
        assert optimizer.beta_1 == pytest.approx(0.9)
    with pytest.raises(ValueError, match="learning_rate=0"):
        default_gan_optimizers(learning_rate=0)
    assert d_optimizer.global_clipnorm is None and g_optimizer.global_clipnorm is None


@pytest.mark.parametrize(("d_clipnorm", "g_clipnorm"), [(10.0, 5.0), (0.0, 5.0), (10.0, 0.0)])
def test_gan_spike_guards_clip_only_their_network(d_clipnorm, g_clipnorm):
    d_optimizer, g_optimizer = default_gan_optimizers(d_clipnorm=d_clipnorm, g_clipnorm=g_clipnorm)
    assert d_optimizer.global_clipnorm == (d_clipnorm or None)
    assert g_optimizer.global_clipnorm == (g_clipnorm or None)


@pytest.mark.parametrize("name", ["d_clipnorm", "g_clipnorm"])
def test_gan_spike_guards_validate(name):
    with pytest.raises(ValueError, match=f"{name}=-1"):
        default_gan_optimizers(**{name: -1.0})


def _adam_steps(gradients: list[float], clipnorm: float) -> list[float]:
    """The size of each Adam(1e-3, beta_1 0.5) step on one weight fed ``gradients`` (the GAN profiles' Adam)."""
    optimizer = default_gan_optimizers(1e-3, 0.5, d_clipnorm=clipnorm)[0]
    variable = keras.Variable(np.zeros(4, np.float32))
    optimizer.build([variable])
    steps = []
    for value in gradients:
        before = np.array(variable)
        optimizer.apply_gradients([(keras.ops.full((4,), value), variable)])
        steps.append(float(np.linalg.norm(np.array(variable) - before)))
    return steps


def test_gan_spike_guard_bounds_the_step_of_a_spike_and_leaves_usual_steps_alone():
    """Adam after 600 usual gradients, then one 50x larger (a spike as in a breakdown): its step is ~10x a usual one
    without the guard and under 2x with a bound above the usual norm, which leaves the usual steps as they were."""
    usual = [0.5] * 600
    free = _adam_steps([*usual, 25.0], clipnorm=0.0)
    guarded = _adam_steps([*usual, 25.0], clipnorm=2.0)
    assert guarded[:600] == free[:600]  # the usual gradients' norm (1.0) is below the bound: identical steps
    assert free[-1] > 8.0 * free[-2]
    assert guarded[-1] < 2.0 * guarded[-2]


def test_dcgan_generator_weight_average():
    """`use_ema` on the generator's Adam: the average follows Keras' rule, and sampling borrows it without harm."""
    momentum = 0.8
    images = RNG.random((12, 16, 16, 3)).astype(np.float32)
    gan = _tiny_gan()
    gan.compile(*default_gan_optimizers(generator_ema=momentum))
    assert gan.averages_generator and gan.g_optimizer.use_ema and not gan.d_optimizer.use_ema
    # Before the first step the average does not exist yet (Keras holds zeros): the generator is lent unchanged.
    untrained = gan.generate(3, seed=1, averaged=False)
    np.testing.assert_array_equal(gan.generate(3, seed=1), untrained)
    assert untrained.std() > 0.0
    seen: list[list[np.ndarray]] = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append([w.numpy().copy() for w in gan.generator.weights])
    )
    gan.fit(images, batch_size=4, epochs=1, verbose=0, shuffle=False, callbacks=[record])
    assert len(seen) == 3
    expected = seen[0]  # the first step copies the weights, later steps blend them in
    for weights in seen[1:]:
        expected = [momentum * average + (1 - momentum) * weight for average, weight in zip(expected, weights)]
    trained = [weight.numpy().copy() for weight in gan.generator.weights]
    noise = RNG.standard_normal((5, 8)).astype(np.float32)
    with gan.averaged_generator() as generator:
        assert generator is gan.generator
        for weight, average in zip(generator.weights, expected):
            np.testing.assert_allclose(weight.numpy(), average, rtol=1e-5, atol=1e-6)
        averaged_output = generator(noise, training=False).numpy()
    for weight, value in zip(gan.generator.weights, trained):  # the trained weights are back, bit for bit
        np.testing.assert_array_equal(weight.numpy(), value)
    assert not np.allclose(averaged_output, gan.generator(noise, training=False).numpy())
    averaged, plain = gan.generate(4, seed=2), gan.generate(4, seed=2, averaged=False)
    assert not np.allclose(averaged, plain)
    with gan.averaged_generator():
        np.testing.assert_array_equal(averaged, gan.generate(4, seed=2, averaged=False))
    # The sample grid of the fitted model draws with the average too.
    grid = GANSampleGrid(lambda epoch, png: None, num_images=4, columns=2)
    grid.set_model(gan)
    with gan.averaged_generator() as generator:
        expected_grid = make_grid(generator(grid.fixed_noise(), training=False).numpy(), 2)
    np.testing.assert_array_equal(grid.render(), expected_grid)
    # An average that no longer fits the generator is refused, and nothing is assigned.
    gan.g_optimizer._model_variables_moving_average.pop()
    with pytest.raises(ValueError, match="moving averages"), gan.averaged_generator():
        pass
    for weight, value in zip(gan.generator.weights, trained):
        np.testing.assert_array_equal(weight.numpy(), value)


def test_dcgan_without_weight_average_samples_the_trained_generator():
    gan = _tiny_gan()
    assert not gan.averages_generator
    with gan.averaged_generator() as generator:
        assert generator is gan.generator
    np.testing.assert_array_equal(gan.generate(3, seed=1), gan.generate(3, seed=1, averaged=False))
    with pytest.raises(ValueError, match="generator_ema=1.0"):
        default_gan_optimizers(generator_ema=1.0)


def test_dcgan_xla_compiled_train_step():
    gan = _tiny_gan()
    gan.compile(jit_compile=True)
    assert gan.jit_compile is True
    history = gan.fit(RNG.random((4, 16, 16, 3)).astype(np.float32), batch_size=4, epochs=1, verbose=0)
    assert all(np.isfinite(values[0]) for values in history.history.values())


_MIRRORED_MIXED_SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    from cxrcore.models import DCGAN, build_discriminator, build_generator
    from cxrcore.models.dcgan import default_gan_optimizers
    keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        generator = build_generator(8, width_multiplier=0.125, output_size=16)
        discriminator = build_discriminator(input_size=16, width_multiplier=0.125)
        gan = DCGAN(discriminator, generator, 8, seed=1)
        gan.compile(*default_gan_optimizers(generator_ema=0.9))
    images = np.random.default_rng(0).random((16, 16, 16, 3)).astype("float32")
    history = gan.fit(images, batch_size=8, epochs=1, verbose=0, shuffle=False)
    trained = [w.numpy() for w in generator.weights]
    with gan.averaged_generator():
        moved = any(not np.allclose(w.numpy(), t) for w, t in zip(generator.weights, trained))
    restored = all(np.array_equal(w.numpy(), t) for w, t in zip(generator.weights, trained))
    per_replica = strategy.experimental_local_results(strategy.run(tf.function(lambda: gan._noise(4))))
    print(json.dumps({
        "replica_noise_distinct": not np.allclose(per_replica[0].numpy(), per_replica[1].numpy()),
        "replicas": strategy.num_replicas_in_sync,
        "average_lent_and_returned": moved and restored and gan.averages_generator,
        "history": {key: [float(v) for v in values] for key, values in history.history.items()},
        "optimizers": [type(gan.d_optimizer).__name__, type(gan.g_optimizer).__name__],
        "hidden_policy": generator.get_layer("conv_transpose_1").dtype_policy.name,
        "output_policies": [generator.layers[-1].dtype_policy.name,
                            discriminator.layers[-1].dtype_policy.name],
        "output_dtype": str(generator(np.zeros((1, 8), "float32")).dtype.name),
    }))
    """
)


@pytest.mark.slow  # 12 s on CPU; mixed precision under MirroredStrategy is a GPU setting
def test_dcgan_mixed_precision_under_mirrored_strategy():
    """Runs in a subprocess: logical devices and the global policy are process-wide."""
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    environment = {**os.environ, "PYTHONPATH": python_path}
    completed = subprocess.run(
        [sys.executable, "-c", _MIRRORED_MIXED_SCRIPT],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["replica_noise_distinct"]  # not N copies of one fake batch
    assert report["average_lent_and_returned"]  # use_ema through LossScaleOptimizer and MirroredStrategy
    assert report["optimizers"] == ["LossScaleOptimizer", "LossScaleOptimizer"]
    assert report["hidden_policy"] == "mixed_float16"
    assert report["output_policies"] == ["float32", "float32"]
    assert report["output_dtype"] == "float32"
    history = report["history"]
    assert all(np.isfinite(values[0]) for values in history.values())
    # The per-replica loss is divided by the replica count inside Keras; the
    # tracker must report the un-divided mean (about ln 2, not ln 2 / 2).
    assert 0.5 < history["d_loss"][0] < 0.9
    assert 0.5 < history["g_loss"][0] < 0.9
    # Gradient norms are reported without the loss scale (2^15 at the start): tens at most, not tens of thousands.
    assert 0.0 < history["d_grad_norm_max"][0] < 1000.0 and 0.0 < history["g_grad_norm_max"][0] < 1000.0


# --------------------------------------------------------------------------- grid helpers


def test_make_grid_and_encode_png():
    images = RNG.random((5, 4, 6, 1)).astype(np.float32)
    grid = make_grid(images, columns=2, padding=1)
    assert grid.dtype == np.uint8
    assert grid.shape == (3 * 5 + 1, 2 * 7 + 1, 3)
    np.testing.assert_array_equal(grid[1:5, 1:7, 0], to_uint8(images[0, ..., 0]))
    assert grid[11:15, 8:14].max() == 0  # blank sixth cell
    decoded = np.asarray(Image.open(io.BytesIO(encode_png(grid))))
    np.testing.assert_array_equal(decoded, grid)
    with pytest.raises(ValueError, match="columns=0"):
        make_grid(images, columns=0)
    with pytest.raises(ValueError, match="float32"):
        encode_png(images[0])


# --------------------------------------------------------------------------- custom CNN


def test_custom_cnn_parameter_count_and_paper_discrepancy():
    model = build_custom_cnn()
    total, trainable = model_summary_counts(model)
    assert trainable == total == 6_259_209 == custom_cnn_trainable_params(128, 3)
    assert PAPER_PARAMS == 1_177_801 and trainable != PAPER_PARAMS
    # The paper's count is unreachable: the size-independent part is 115,209 and
    # Flatten -> Dense(120) adds 120 * F, but 1,177,801 - 115,209 is no multiple of 120.
    size_independent = custom_cnn_trainable_params(14, 3) - 120 * 128  # F = 128 at 14 px
    assert size_independent == 115_209
    assert (PAPER_PARAMS - size_independent) % 120 != 0
    assert (PAPER_PARAMS - custom_cnn_trainable_params(14, 1) + 120 * 128) % 120 != 0


@pytest.mark.parametrize(("input_size", "channels"), [(14, 3), (32, 1), (64, 3)])
def test_custom_cnn_shapes_and_closed_form_count(input_size, channels):
    model = build_custom_cnn(input_size, channels)
    assert _trainable(model) == custom_cnn_trainable_params(input_size, channels)
    pixels = RNG.uniform(0, 255, (2, input_size, input_size, channels)).astype(np.float32)
    outputs = model(pixels, training=False).numpy()
    assert outputs.shape == (2, 1)
    _assert_per_image_and_input_dependent(model, pixels, outputs)


def test_custom_cnn_rescaling_contract():
    model = build_custom_cnn(32)
    assert isinstance(model.layers[1], keras.layers.Rescaling)
    assert model.layers[1].scale == pytest.approx(1 / 255)
    bare = build_custom_cnn(32, include_rescaling=False)
    assert not any(isinstance(layer, keras.layers.Rescaling) for layer in bare.layers)
    bare.set_weights(model.get_weights())
    pixels = _pixels(32)
    np.testing.assert_allclose(
        model(pixels).numpy(), bare(preprocess(pixels)).numpy(), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(preprocess(np.array([0, 255, 127.5])), [0.0, 1.0, 0.5])
    tensor_out = preprocess(keras.ops.ones((2,)) * 255)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tensor_out), [1.0, 1.0])
    with pytest.raises(ValueError, match="input_size=13"):
        build_custom_cnn(13)


# --------------------------------------------------------------------------- transfer models


_FAMILY_MODULES = {
    "inceptionv3": keras.applications.inception_v3,
    "resnet50": keras.applications.resnet50,
    "efficientnetb0": keras.applications.efficientnet,
    "vgg16": keras.applications.vgg16,
    "densenet201": keras.applications.densenet,
    "xception": keras.applications.xception,
}


def test_backbone_table():
    assert list(BACKBONES) == [
        "inceptionv3", "resnet50", "efficientnetb0", "vgg16", "densenet201", "xception"
    ]
    assert ALL_MODELS == ["custom_cnn", *BACKBONES]
    for name, spec in BACKBONES.items():
        assert spec.name == name
        assert spec.preprocess_input is _FAMILY_MODULES[name].preprocess_input
    assert len({id(spec.preprocess_input) for spec in BACKBONES.values()}) == len(BACKBONES)
    assert BACKBONES["inceptionv3"].min_input_size == 75
    assert BACKBONES["xception"].min_input_size == 71


@pytest.mark.parametrize("name", list(BACKBONES))
def test_transfer_model_shape_and_head(transfer_models, name):
    model = transfer_models(name)
    size = BACKBONES[name].min_input_size
    pixels = _pixels(size)
    outputs = model(pixels, training=False).numpy()
    assert outputs.shape == (2, 1)
    _assert_per_image_and_input_dependent(model, pixels, outputs)
    assert isinstance(model.layers[1], BackbonePreprocessing)
    base = get_base_model(model)
    assert model.layers[2] is base and not base.trainable
    head = [layer.name for layer in model.layers[3:]]
    assert head == [
        "head_conv", "head_flatten", "head_dense_1", "head_dense_2", "head_dropout", "probability"
    ]
    assert model.get_layer("head_conv").filters == 256
    assert model.get_layer("head_dense_1").units == 1024
    assert model.get_layer("head_dense_2").units == 512
    assert model.get_layer("head_dropout").rate == pytest.approx(0.2)
    total, trainable = model_summary_counts(model)
    assert trainable == sum(layer.count_params() for layer in model.layers[3:])
    assert total - trainable == base.count_params()


@pytest.mark.parametrize("name", list(BACKBONES))
def test_preprocessing_matches_imagenet_input_range(transfer_models, name):
    """The tensor reaching the base is in the range its ImageNet weights expect."""
    model = transfer_models(name)
    spec = BACKBONES[name]
    size = spec.min_input_size
    preprocessing = keras.Model(model.input, model.get_layer("backbone_preprocessing").output)
    assert get_base_model(model).input.shape[1:] == (size, size, 3)

    extremes = np.stack([np.zeros((size, size, 3)), np.full((size, size, 3), 255.0)]).astype(np.float32)
    extreme_out = preprocessing(extremes).numpy()
    low, high = spec.input_range
    assert extreme_out.min() == pytest.approx(low, abs=1e-3)
    assert extreme_out.max() == pytest.approx(high, abs=1e-3)
    random_out = preprocessing(_pixels(size)).numpy()
    assert low - 1e-3 <= random_out.min() and random_out.max() <= high + 1e-3

    red = np.zeros((1, size, size, 3), np.float32)
    red[..., 0] = 255.0
    red_out = preprocessing(red).numpy()[0, 0, 0]
    if name in ("resnet50", "vgg16"):  # caffe: BGR, ImageNet mean subtracted, no scaling
        np.testing.assert_allclose(red_out, [-103.939, -116.779, 255.0 - 123.68], atol=1e-3)
    elif name in ("inceptionv3", "xception"):  # tf: [-1, 1]
        np.testing.assert_allclose(red_out, [1.0, -1.0, -1.0], atol=1e-6)
    elif name == "densenet201":  # torch: /255, ImageNet mean/std
        expected = (np.array([1.0, 0.0, 0.0]) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
        np.testing.assert_allclose(red_out, expected, atol=1e-4)
    else:  # efficientnetb0: raw [0, 255]; the base rescales itself
        np.testing.assert_allclose(red_out, [255.0, 0.0, 0.0])
        assert isinstance(get_base_model(model).layers[1], keras.layers.Rescaling)
    assert network_input_range(name) == spec.input_range


@pytest.mark.parametrize(("name", "too_small"), [("inceptionv3", 74), ("xception", 70), ("vgg16", 31)])
def test_transfer_model_rejects_small_inputs(name, too_small):
    minimum = BACKBONES[name].min_input_size
    with pytest.raises(ValueError, match=rf">= {minimum}\. Received: input_size={too_small}"):
        build_transfer_model(name, input_size=too_small)


def test_transfer_model_validates_arguments():
    with pytest.raises(ValueError, match="name='resnet18'"):
        build_transfer_model("resnet18")
    with pytest.raises(ValueError, match="weights=3"):
        build_transfer_model("vgg16", input_size=32, weights=3)
    with pytest.raises(ValueError, match="s3://bucket/vgg16.h5"):
        build_transfer_model("vgg16", input_size=32, weights="s3://bucket/vgg16.h5")
    with pytest.raises(ValueError, match="does not exist"):
        build_transfer_model("vgg16", input_size=32, weights="/nonexistent/vgg16.weights.h5")
    with pytest.raises(ValueError, match=r"weights='vgg16\.keras'"):
        build_transfer_model("vgg16", input_size=32, weights="vgg16.keras")


# --------------------------------------------------------------------------- save / load


def _assert_round_trip(model: keras.Model, inputs: np.ndarray, path: Path) -> keras.Model:
    """Saves through the runtime's verified path, reloads, and checks identical predictions."""
    expected = model(inputs, training=False).numpy()
    saved = save_model(model, path)
    assert saved.path == path and saved.sha256 == sha256_file(path)
    assert not [item.name for item in path.parent.iterdir() if item.name.startswith(".")]  # no temporary file left
    restored = keras.models.load_model(path)
    np.testing.assert_array_equal(restored(inputs, training=False).numpy(), expected)
    return restored


def test_round_trip_gan_networks(tmp_path):
    generator = build_generator(16, width_multiplier=0.25, output_size=32)
    noise = RNG.standard_normal((2, 16)).astype(np.float32)
    _assert_round_trip(generator, noise, tmp_path / "generator.keras")
    discriminator = build_discriminator(input_size=32, width_multiplier=0.25)
    images = RNG.random((2, 32, 32, 3)).astype(np.float32)
    _assert_round_trip(discriminator, images, tmp_path / "discriminator.keras")


@pytest.mark.parametrize(
    ("name", "batch_norm_layers"), [("vgg16", 0), ("efficientnetb0", 49)], ids=["no-batchnorm", "batchnorm"]
)
def test_backbone_from_scratch_trains_end_to_end(name, batch_norm_layers, tmp_path):
    """Without ImageNet weights the base trains: every weight trainable, BatchNorm on batch statistics."""
    keras.utils.set_random_seed(0)
    model = build_classifier(name, input_size=32, from_scratch=True)
    frozen = build_classifier(name, input_size=32)  # the paper's model: same architecture, base frozen
    assert model_summary_counts(model)[0] == model_summary_counts(frozen)[0]
    base = get_base_model(model)
    assert base.trainable and all(layer.trainable for layer in base.layers)
    norms = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == batch_norm_layers
    # The only weights that do not train are BatchNorm moving statistics (and EfficientNet's input Normalization).
    statistics = {id(weight) for layer in base.layers if isinstance(layer, (keras.layers.BatchNormalization,
                  keras.layers.Normalization)) for weight in layer.non_trainable_weights}
    assert all(id(weight) in statistics for weight in model.non_trainable_weights)
    if norms:  # a training step moves the statistics: BatchNorm runs in training mode, not frozen at inference
        before = keras.ops.convert_to_numpy(norms[0].moving_mean).copy()
        model(_pixels(32), training=True)
        assert not np.allclose(keras.ops.convert_to_numpy(norms[0].moving_mean), before)
        # ... at momentum 0.9 (a short from-scratch run's statistics must catch up), saved with the model;
        # the paper's frozen base keeps Keras' 0.99.
        assert {layer.momentum for layer in norms} == {FROM_SCRATCH_BATCH_NORM_MOMENTUM} == {0.9}
        frozen_norms = [layer for layer in get_base_model(frozen).layers
                        if isinstance(layer, keras.layers.BatchNormalization)]
        assert {layer.momentum for layer in frozen_norms} == {0.99}
        model.save(tmp_path / "scratch.keras")
        restored = keras.models.load_model(tmp_path / "scratch.keras", compile=False)
        assert {layer.momentum for layer in get_base_model(restored).layers
                if isinstance(layer, keras.layers.BatchNormalization)} == {0.9}
    with pytest.raises(ValueError, match="weights='imagenet'"):
        build_classifier(name, input_size=32, weights="imagenet", from_scratch=True)


def _base_output_rms(model: keras.Model, pixels: np.ndarray) -> float:
    preprocessed = model.get_layer("backbone_preprocessing")(pixels)
    output = keras.ops.convert_to_numpy(get_base_model(model)(preprocessed, training=True))
    return float(np.sqrt(np.mean(np.square(output))))


def test_from_scratch_plain_base_keeps_its_signal():
    """VGG16 (no BatchNorm) from scratch: He-normal kernels, the first scaled to the caffe input range."""
    pixels = _pixels(32, batch=4)
    keras.utils.set_random_seed(0)
    keras_default = build_classifier("vgg16", input_size=32)  # the same base as Keras initialises it
    keras.utils.set_random_seed(0)
    model = build_classifier("vgg16", input_size=32, from_scratch=True)
    keras.utils.set_random_seed(0)
    again = build_classifier("vgg16", input_size=32, from_scratch=True)
    default_rms, scratch_rms = _base_output_rms(keras_default, pixels), _base_output_rms(model, pixels)
    preprocessed = keras.ops.convert_to_numpy(model.get_layer("backbone_preprocessing")(pixels))
    input_rms = float(np.sqrt(np.mean(np.square(preprocessed))))
    # Keras' Glorot kernels leave ~1/500 of the caffe-range input's rms after 13 ReLU layers (measured: 0.14 of 75);
    # He-normal keeps the scale that the first kernel's 1/137 gives it (measured: 0.49, about 1/137 of 75).
    assert input_rms > 50 and default_rms < input_rms / 300
    assert 0.2 < scratch_rms < 5.0 and scratch_rms > 2.5 * default_rms
    probabilities = keras.ops.convert_to_numpy(model(pixels, training=False))
    assert 0.01 < probabilities.min() and probabilities.max() < 0.99  # the head is not saturated
    kernels = [layer.kernel for layer in get_base_model(model).layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(kernels) == 13
    first = keras.ops.convert_to_numpy(kernels[0])
    np.testing.assert_allclose(first.std(), np.sqrt(2 / 27) / ((151.061 + 123.68) / 2), rtol=0.25)
    same_shape = [keras.ops.convert_to_numpy(kernel) for kernel in kernels if tuple(kernel.shape) == (3, 3, 512, 512)]
    assert len(same_shape) >= 2 and not np.allclose(same_shape[0], same_shape[1])  # one draw per layer
    for kernel, repeated in zip(model.weights, again.weights):  # seeded by keras.utils.set_random_seed
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(kernel), keras.ops.convert_to_numpy(repeated))
    assert initialise_plain_base(get_base_model(build_classifier("vgg16", input_size=32)), BACKBONES["vgg16"]) == 13


def test_from_scratch_base_with_batch_norm_keeps_keras_initialisation():
    keras.utils.set_random_seed(0)
    model = build_classifier("efficientnetb0", input_size=32, from_scratch=True)
    keras.utils.set_random_seed(0)
    paper = build_classifier("efficientnetb0", input_size=32)
    for weight, reference in zip(model.weights, paper.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight), keras.ops.convert_to_numpy(reference))
    assert initialise_plain_base(get_base_model(model), BACKBONES["efficientnetb0"]) == 0


def test_round_trip_custom_cnn(tmp_path):
    model = build_classifier("custom_cnn", input_size=32)
    restored = _assert_round_trip(model, _pixels(32), tmp_path / "cnn.keras")
    assert isinstance(restored.layers[1], keras.layers.Rescaling)


@pytest.mark.parametrize("name", ["vgg16", "efficientnetb0"])
def test_round_trip_transfer_models(transfer_models, tmp_path, name):
    size = BACKBONES[name].min_input_size
    restored = _assert_round_trip(transfer_models(name), _pixels(size), tmp_path / f"{name}.keras")
    layer = restored.get_layer("backbone_preprocessing")
    assert isinstance(layer, BackbonePreprocessing) and layer.backbone == name
    assert not get_base_model(restored).trainable


def test_model_files_are_verified_from_save_to_fetch(tmp_path):
    model = build_classifier("custom_cnn", input_size=32)
    pixels = _pixels(32)
    copy = inference_copy(model)
    np.testing.assert_array_equal(copy(pixels, training=False).numpy(), model(pixels, training=False).numpy())
    weights = save_model(model, tmp_path / "saved" / "cnn.weights.h5", weights_only=True)
    with pytest.raises(ValueError, match=r"must end with \.keras"):
        save_model(model, tmp_path / "saved" / "cnn.h5")
    assert sorted(item.name for item in (tmp_path / "saved").iterdir()) == ["cnn.weights.h5"]

    store = open_store((tmp_path / "store").as_uri())
    with store.commit("out", inputs={"test": 1}) as transaction:
        put_verified(transaction, "cnn.weights.h5", weights)
    marker = store.require_committed("out")
    assert marker.outputs["cnn.weights.h5"]["sha256"] == weights.sha256
    fetched = fetch_verified(store, "out", marker, {"cnn.weights.h5": tmp_path / "fetched" / "cnn.weights.h5"})
    other = build_classifier("custom_cnn", input_size=32)
    other.load_weights(fetched["cnn.weights.h5"])
    np.testing.assert_array_equal(other(pixels, training=False).numpy(), model(pixels, training=False).numpy())

    # A file that changes after saving, or an object that changes after the commit, is refused.
    weights.path.write_bytes(weights.path.read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match="changed between saving"):
        with store.commit("changed", inputs={"test": 2}) as transaction:
            put_verified(transaction, "cnn.weights.h5", weights)
    assert store.read_marker("changed") is None
    (tmp_path / "store" / "out" / "cnn.weights.h5").write_bytes(b"tampered")
    with pytest.raises(IntegrityError):
        fetch_verified(store, "out", marker, {"cnn.weights.h5": tmp_path / "again" / "cnn.weights.h5"})
    with pytest.raises(ValueError, match="lacks absent.keras"):
        fetch_verified(store, "out", marker, {"absent.keras": tmp_path / "absent.keras"})


# --------------------------------------------------------------------------- weights from file


def test_weights_from_local_file(transfer_models, tmp_path):
    base = get_base_model(transfer_models("vgg16"))
    path = tmp_path / "base.weights.h5"
    base.save_weights(path)
    model = build_transfer_model("vgg16", input_size=48, weights=path)
    loaded = get_base_model(model).get_weights()
    assert len(loaded) == len(base.get_weights())
    for expected, actual in zip(base.get_weights(), loaded, strict=True):
        np.testing.assert_array_equal(actual, expected)
    classifier = build_classifier("vgg16", input_size=32, weights=str(path))
    np.testing.assert_array_equal(get_base_model(classifier).get_weights()[0], base.get_weights()[0])


def test_mismatched_weights_file_raises_naming_file(tmp_path):
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    path = tmp_path / "other.weights.h5"
    other.save_weights(path)
    with pytest.raises(ValueError, match="other.weights.h5") as error:
        build_transfer_model("vgg16", input_size=32, weights=path)
    assert "does not match" in str(error.value)


def test_mismatched_legacy_h5_file_raises_naming_file(tmp_path):
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    path = tmp_path / "other_notop.h5"
    # A legacy (Keras 2 style) HDF5 file, like keras' `*_notop.h5` ImageNet files.
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, other)
    with pytest.raises(ValueError, match="other_notop.h5"):
        build_transfer_model("vgg16", input_size=32, weights=path)


def test_efficientnet_local_imagenet_file_gets_stddev_correction(tmp_path):
    """Keras adds the ImageNet stddev fix only for weights="imagenet"; a local file needs it too."""
    source = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(32, 32, 3))
    normalization = next(
        layer for layer in source.layers if isinstance(layer, keras.layers.Normalization)
    )
    normalization.adapt_mean.assign([0.485, 0.456, 0.406])
    normalization.adapt_variance.assign([0.229, 0.224, 0.225])  # Keras stores the stddev here
    path = tmp_path / "efficientnetb0_notop.weights.h5"
    source.save_weights(path)

    target = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(32, 32, 3))
    load_base_weights(target, path, backbone="efficientnetb0")
    fixed = next(layer for layer in target.layers if isinstance(layer, keras.layers.Normalization))
    probe = keras.Model(target.input, fixed.output)
    red = np.zeros((1, 32, 32, 3), np.float32)
    red[..., 0] = 255.0
    expected = (np.array([1.0, 0.0, 0.0]) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    np.testing.assert_allclose(probe(red).numpy()[0, 0, 0], expected, rtol=1e-4)


# --------------------------------------------------------------------------- registry helpers


_PAPER_OPTIMIZERS = {
    "custom_cnn": keras.optimizers.Adam,
    "inceptionv3": keras.optimizers.RMSprop,
    "resnet50": keras.optimizers.SGD,
    "efficientnetb0": keras.optimizers.Adam,
    "vgg16": keras.optimizers.Adam,
    "densenet201": keras.optimizers.Adam,
    "xception": keras.optimizers.Adam,
}


@pytest.mark.parametrize("name", ALL_MODELS)
def test_paper_optimizer_per_table(name):
    optimizer = paper_optimizer(name)
    assert type(optimizer) is _PAPER_OPTIMIZERS[name]
    assert float(optimizer.learning_rate) == pytest.approx(1e-4)
    assert paper_optimizer(name) is not paper_optimizer(name)
    assert float(paper_optimizer(name, 3e-4).learning_rate) == pytest.approx(3e-4)


def test_registry_helpers_validate_names():
    for helper in (paper_optimizer, classifier_input_range, network_input_range):
        with pytest.raises(ValueError, match="name='alexnet'"):
            helper("alexnet")
    with pytest.raises(ValueError, match="weights='imagenet'"):
        build_classifier("custom_cnn", input_size=32, weights="imagenet")


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_classifier_maps_raw_pixels_onto_its_network_range(transfer_models, name):
    """The model's own first layer maps ``classifier_input_range`` onto ``network_input_range``, per channel."""
    if name == "custom_cnn":
        model = build_classifier(name, input_size=classifier_min_input_size(name))
        preprocessed = model.layers[1].output  # the Rescaling layer
    else:
        model = transfer_models(name)
        preprocessed = model.get_layer("backbone_preprocessing").output
    with pytest.raises(ValueError, match="input_size"):  # the minimum size is the minimum
        build_classifier(name, input_size=classifier_min_input_size(name) - 1)
    preprocessing = keras.Model(model.input, preprocessed)
    size = model.input_shape[1]
    low, high = classifier_input_range(name)
    gray_levels = np.linspace(low, high, 5, dtype=np.float32)
    batch = np.broadcast_to(gray_levels[:, None, None, None], (5, size, size, 3)).astype(np.float32)
    mapped = preprocessing(batch).numpy()
    network_low, network_high = network_input_range(name)
    assert mapped.min() == pytest.approx(network_low, abs=1e-3)
    assert mapped.max() == pytest.approx(network_high, abs=1e-3)
    # Brighter pixels map to larger values in every channel (no inverted or dropped channel).
    per_level = mapped.mean(axis=(1, 2))  # (levels, channels)
    assert np.all(np.diff(per_level, axis=0) > 0), per_level


def test_grayscale_to_rgb():
    gray = RNG.uniform(0, 255, (2, 8, 8, 1)).astype(np.float32)
    rgb = grayscale_to_rgb(gray)
    assert isinstance(rgb, np.ndarray) and rgb.shape == (2, 8, 8, 3)
    np.testing.assert_array_equal(rgb[..., 2], gray[..., 0])
    assert grayscale_to_rgb(rgb) is rgb
    layer_out = GrayscaleToRGB()(keras.ops.convert_to_tensor(gray))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer_out), rgb)
    with pytest.raises(ValueError, match=r"images.shape=\(2, 8, 8, 2\)"):
        grayscale_to_rgb(np.zeros((2, 8, 8, 2)))


def test_model_summary_counts():
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.BatchNormalization(), keras.layers.Dense(2)]
    )
    assert model_summary_counts(model) == (3 * 4 + 8, 3 * 2 + 8)
    assert all(isinstance(count, int) for count in model_summary_counts(model))
