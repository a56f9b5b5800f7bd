"""DCGAN generator, discriminator and adversarial training model (paper Table 1).

The architecture is the Keras-io "DCGAN overriding `train_step`" example that the
paper's Table 1 reproduces layer for layer:

Generator (defaults, 3,750,275 trainable parameters)::

    Input(100) -> Dense(8*8*128 = 8192) -> Reshape(8, 8, 128)
    -> Conv2DTranspose(128, k4, s2, same) -> LeakyReLU(0.2)      # 16x16
    -> Conv2DTranspose(256, k4, s2, same) -> LeakyReLU(0.2)      # 32x32
    -> Conv2DTranspose(512, k4, s2, same) -> LeakyReLU(0.2)      # 64x64
    -> Conv2D(3, k5, same, sigmoid)                              # 64x64x3 in [0, 1]

    827,392 + 262,272 + 524,544 + 2,097,664 + 38,403 = 3,750,275

Table 1 (and the Keras-io example) put no activation between the Dense layer and
the Reshape; `build_generator(dense_leaky_relu=True)` inserts a LeakyReLU(0.2)
there (parameter-free, so the count is unchanged).

Discriminator (defaults, 404,801 trainable parameters)::

    Input(64, 64, 3)
    -> Conv2D(64, k4, s2, same) -> LeakyReLU(0.2)                # 32x32
    -> Conv2D(128, k4, s2, same) -> LeakyReLU(0.2)               # 16x16
    -> Conv2D(128, k4, s2, same) -> LeakyReLU(0.2)               # 8x8
    -> Flatten -> Dropout(0.2) -> Dense(1)                       # logit

    3,136 + 131,200 + 262,272 + 8,193 = 404,801

Image sizes: the generator always has the three stride-2 upsampling stages of
Table 1 and starts from an `(output_size / 8) x (output_size / 8)` feature map
(8x8 for the paper's 64 px, 4x4 for 32 px, 2x2 for 16 px, 16x16 for 128 px), so
only the Dense width changes with `output_size`. The discriminator likewise keeps
its three stride-2 convolutions at every `input_size`.

Pixel range: the generator ends in a sigmoid, so generated images lie in [0, 1];
real images fed to `DCGAN.fit` must be float images in [0, 1] as well.
Labels: real = 1, generated = 0 (the discriminator outputs a logit of "real").

Mixed precision: the generator's final sigmoid convolution and the discriminator's
Dense logit layer are always float32 layers, and `DCGAN.compile` wraps both
optimizers in `keras.optimizers.LossScaleOptimizer` when either network was built
under the `"mixed_float16"` policy.

Distribution: build the networks and the `DCGAN`, and call `compile`, inside
`strategy.scope()`. The losses are `keras.losses.BinaryCrossentropy` objects
whose `"sum_over_batch_size"` reduction already divides by the number of replicas
under `tf.distribute`, and Keras optimizers sum gradients across replicas, so the
update equals the single-device update on the global batch.

Weight averaging: a generator optimizer built with `use_ema=True` (Keras' own
exponential moving average, `default_gan_optimizers(generator_ema=...)`) keeps an
average of the generator's weights beside its Adam moments, so checkpoints carry
it. `DCGAN.averaged_generator()` lends the generator those weights for a block;
`generate`, `GANSampleGrid` and the published generator sample through it.

Models never do I/O: `GANSampleGrid` hands PNG bytes to a caller-supplied sink.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from cxrcore.models.gan_augment import diff_augment, validate_policies
from cxrcore.models.gan_grid import GANSampleGrid, encode_png, make_grid, to_uint8
from cxrcore.vocab import PAPER_DISCRIMINATOR_PARAMS, PAPER_GENERATOR_PARAMS, PAPER_LEARNING_RATE

__all__ = [
    "DCGAN",
    "GANSampleGrid",
    "GENERATOR_PAPER_PARAMS",
    "DISCRIMINATOR_PAPER_PARAMS",
    "DETAIL_SIGMA_FRACTION",
    "build_discriminator",
    "build_generator",
    "default_gan_optimizers",
    "detail_band",
    "detail_mean_term",
    "encode_png",
    "make_grid",
    "mode_seeking_term",
    "to_uint8",
]

#: Trainable parameters of the paper's generator (Table 1).
GENERATOR_PAPER_PARAMS = PAPER_GENERATOR_PARAMS
#: Trainable parameters of the paper's discriminator (Table 1).
DISCRIMINATOR_PAPER_PARAMS = PAPER_DISCRIMINATOR_PARAMS

_GENERATOR_FILTERS = (128, 256, 512)
_GENERATOR_DENSE_CHANNELS = 128
_DISCRIMINATOR_FILTERS = (64, 128, 128)
_LEAKY_SLOPE = 0.2
#: Std of the Gaussian blur that :func:`detail_band` subtracts, as a fraction of the image side (3 px at 64 px).
DETAIL_SIGMA_FRACTION = 3.0 / 64.0


def _scaled(filters: int, width_multiplier: float) -> int:
    return max(1, int(round(filters * width_multiplier)))


def _validate_width(width_multiplier: float) -> None:
    if not width_multiplier > 0:
        raise ValueError(f"`width_multiplier` must be > 0. Received: width_multiplier={width_multiplier}")


def _validate_channels(channels: int) -> None:
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 or 3. Received: channels={channels}")


def _validate_size(argument: str, size: int) -> None:
    if not isinstance(size, int) or size < 16 or size % 8 != 0:
        raise ValueError(
            f"`{argument}` must be an integer multiple of 8 that is >= 16 "
            f"(e.g. 16, 32, 64, 128). Received: {argument}={size}"
        )


def build_generator(
    latent_dim: int = 100,
    *,
    width_multiplier: float = 1.0,
    output_size: int = 64,
    channels: int = 3,
    dense_leaky_relu: bool = False,
) -> keras.Model:
    """Builds the DCGAN generator of Table 1.

    Args:
        latent_dim: Size of the input noise vector (100 in the paper).
        width_multiplier: Scales every filter count and the Dense layer's channel
            count (for small smoke profiles). 1.0 gives the paper's network.
        output_size: Height/width of the generated images. A multiple of 8 that
            is >= 16. The three upsampling stages start from an
            `output_size // 8` square feature map.
        channels: Output channels (3 in the paper, 1 for grayscale).
        dense_leaky_relu: Insert LeakyReLU(0.2) between Dense and Reshape. Table 1
            and the Keras-io example have none, hence the default `False`.

    Returns:
        A functional `keras.Model` mapping `(batch, latent_dim)`
        noise to `(batch, output_size, output_size, channels)` images in [0, 1]
        (float32 even under mixed precision).

    Raises:
        ValueError: If an argument is out of range.
    """
    if not isinstance(latent_dim, int) or latent_dim < 1:
        raise ValueError(f"`latent_dim` must be a positive integer. Received: latent_dim={latent_dim}")
    _validate_width(width_multiplier)
    _validate_size("output_size", output_size)
    _validate_channels(channels)

    start = output_size // 8
    dense_channels = _scaled(_GENERATOR_DENSE_CHANNELS, width_multiplier)
    inputs = keras.Input(shape=(latent_dim,), name="noise")
    x = layers.Dense(start * start * dense_channels, name="dense")(inputs)
    if dense_leaky_relu:
        x = layers.LeakyReLU(negative_slope=_LEAKY_SLOPE, name="dense_leaky_relu")(x)
    x = layers.Reshape((start, start, dense_channels), name="reshape")(x)
    for index, filters in enumerate(_GENERATOR_FILTERS, start=1):
        x = layers.Conv2DTranspose(
            _scaled(filters, width_multiplier),
            kernel_size=4,
            strides=2,
            padding="same",
            name=f"conv_transpose_{index}",
        )(x)
        x = layers.LeakyReLU(negative_slope=_LEAKY_SLOPE, name=f"leaky_relu_{index}")(x)
    outputs = layers.Conv2D(
        channels,
        kernel_size=5,
        padding="same",
        activation="sigmoid",
        dtype="float32",
        name="image",
    )(x)
    return keras.Model(inputs, outputs, name="generator")


def build_discriminator(
    *,
    input_size: int = 64,
    channels: int = 3,
    width_multiplier: float = 1.0,
    dropout_rate: float = 0.2,
) -> keras.Model:
    """Builds the DCGAN discriminator of Table 1.

    Args:
        input_size: Height/width of the input images (64 in the paper). A multiple
            of 8 that is >= 16.
        channels: Input channels (3 in the paper).
        width_multiplier: Scales every filter count. 1.0 gives the paper's network.
        dropout_rate: Dropout rate before the final Dense layer (0.2 in the paper).

    Returns:
        A functional `keras.Model` mapping images in [0, 1] to one float32 logit
        per image (positive means "real"); shape `(batch, 1)`.

    Raises:
        ValueError: If an argument is out of range.
    """
    _validate_size("input_size", input_size)
    _validate_channels(channels)
    _validate_width(width_multiplier)
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"`dropout_rate` must be in [0, 1). Received: dropout_rate={dropout_rate}")

    inputs = keras.Input(shape=(input_size, input_size, channels), name="image")
    x = inputs
    for index, filters in enumerate(_DISCRIMINATOR_FILTERS, start=1):
        x = layers.Conv2D(
            _scaled(filters, width_multiplier),
            kernel_size=4,
            strides=2,
            padding="same",
            name=f"conv_{index}",
        )(x)
        x = layers.LeakyReLU(negative_slope=_LEAKY_SLOPE, name=f"leaky_relu_{index}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(dropout_rate, name="dropout")(x)
    outputs = layers.Dense(1, dtype="float32", name="logit")(x)
    return keras.Model(inputs, outputs, name="discriminator")


def default_gan_optimizers(
    learning_rate: float = PAPER_LEARNING_RATE,
    beta_1: float = 0.9,
    *,
    generator_learning_rate: float | None = None,
    generator_ema: float = 0.0,
    d_clipnorm: float = 0.0,
    g_clipnorm: float = 0.0,
) -> tuple[keras.optimizers.Optimizer, keras.optimizers.Optimizer]:
    """Returns fresh `(d_optimizer, g_optimizer)` Adam optimizers.

    The paper states only "Adam, learning rate 0.0001". The Keras-io DCGAN
    example that Table 1 reproduces uses `Adam(learning_rate=0.0001)` with the
    Keras default `beta_1=0.9`, which is therefore the default here. The DCGAN
    paper (Radford et al.) recommends `beta_1=0.5`; pass it to opt in.

    Args:
        learning_rate: Learning rate of the discriminator's optimizer, and of the generator's unless
            `generator_learning_rate` is given.
        beta_1: Adam's first-moment decay of both optimizers.
        generator_learning_rate: The generator's learning rate when it differs (TTUR); `None`: `learning_rate`.
        generator_ema: Momentum of an exponential moving average of the generator's weights, kept by its
            optimizer (Keras `use_ema`, updated after every step); 0 (the paper): none.
        d_clipnorm: The discriminator's Adam scales its gradients so their global norm is at most this (Keras
            `global_clipnorm`); 0 (the paper): none. Adam divides a step by the running root mean square of
            past gradients, so one gradient 50x the usual ones moves the weights ~15x a usual step; a bound
            above every healthy step cuts only such spikes and leaves the other steps exactly as they were.
        g_clipnorm: The same for the generator's Adam.

    Returns:
        A `(discriminator_optimizer, generator_optimizer)` tuple.

    Raises:
        ValueError: If `learning_rate` is not positive, `beta_1` not in [0, 1), `generator_ema` not in [0, 1)
            or a clip norm negative.
    """
    if not learning_rate > 0:
        raise ValueError(f"`learning_rate` must be > 0. Received: learning_rate={learning_rate}")
    generator_learning_rate = learning_rate if generator_learning_rate is None else generator_learning_rate
    if not generator_learning_rate > 0:
        raise ValueError(
            f"`generator_learning_rate` must be > 0. Received: generator_learning_rate={generator_learning_rate}"
        )
    if not 0.0 <= beta_1 < 1.0:
        raise ValueError(f"`beta_1` must be in [0, 1). Received: beta_1={beta_1}")
    if not 0.0 <= generator_ema < 1.0:
        raise ValueError(f"`generator_ema` must be in [0, 1). Received: generator_ema={generator_ema}")
    for name, value in (("d_clipnorm", d_clipnorm), ("g_clipnorm", g_clipnorm)):
        if not value >= 0.0:
            raise ValueError(f"`{name}` must be >= 0. Received: {name}={value}")
    averaging = {"use_ema": True, "ema_momentum": generator_ema} if generator_ema > 0.0 else {}
    d_clip = {"global_clipnorm": float(d_clipnorm)} if d_clipnorm > 0.0 else {}
    g_clip = {"global_clipnorm": float(g_clipnorm)} if g_clipnorm > 0.0 else {}
    return (
        keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1, name="d_adam", **d_clip),
        keras.optimizers.Adam(
            learning_rate=generator_learning_rate, beta_1=beta_1, name="g_adam", **averaging, **g_clip
        ),
    )


def _moving_averages(optimizer: keras.optimizers.Optimizer | None) -> list[Any]:
    """The weight averages an optimizer built with `use_ema=True` keeps (through a loss-scale wrapper); else []."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if inner is None or not getattr(inner, "use_ema", False) or not inner.built:
        return []
    return list(inner._model_variables_moving_average)  # as keras.callbacks.SwapEMAWeights reads it


class RunningMax(keras.metrics.Metric):
    """The largest value seen since the last reset (an epoch), e.g. the largest gradient norm of the epoch.

    Under a distribution strategy it reads the first replica's maximum (a diagnostic, not a sum over replicas).
    """

    def __init__(self, name: str = "running_max", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.maximum = self.add_variable(
            shape=(), initializer="zeros", dtype="float32", aggregation="only_first_replica", name="maximum"
        )

    def update_state(self, value: Any) -> None:
        self.maximum.assign(ops.maximum(self.maximum, ops.cast(value, "float32")))

    def result(self) -> Any:
        return ops.convert_to_tensor(self.maximum)

    def reset_state(self) -> None:
        self.maximum.assign(0.0)


def _gradient_norm(gradients: list[Any], optimizer: keras.optimizers.Optimizer) -> Any:
    """The global norm of the loss's gradients, before any clipping and without a mixed-precision loss scale."""
    scale = ops.cast(optimizer.scale_loss(ops.ones((), dtype="float32")), "float32")
    squares = [ops.sum(ops.square(ops.cast(gradient, "float32"))) for gradient in gradients if gradient is not None]
    return ops.sqrt(ops.sum(ops.stack(squares))) / scale


def _num_replicas() -> int:
    return tf.distribute.get_strategy().num_replicas_in_sync


def _uses_mixed_float16(model: keras.Model) -> bool:
    return any(getattr(layer, "compute_dtype", None) == "float16" for layer in model.layers)


def _gaussian_taps(sigma: float) -> np.ndarray:
    radius = max(1, int(3.0 * sigma))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-(offsets**2) / (2.0 * sigma**2))
    return (taps / taps.sum()).astype(np.float32)


def detail_band(images: Any, sigma: float) -> Any:
    """The images minus their Gaussian blur: the detail finer than about ``5 * sigma`` pixels (ribs, vessels).

    The blur is separable, per channel, with zero padding (linear, so the band of a difference of two images is
    the difference of their bands).

    Args:
        images: ``(n, h, w, c)`` float images.
        sigma: Std of the blur in pixels, > 0.

    Returns:
        A tensor of the images' shape.

    Raises:
        ValueError: ``sigma`` is not positive.
    """
    if not sigma > 0.0:
        raise ValueError(f"`sigma` must be > 0. Received: sigma={sigma}")
    taps = _gaussian_taps(float(sigma))
    channels = int(images.shape[-1])
    rows = tf.constant(np.tile(taps[:, None, None, None], (1, 1, channels, 1)))
    columns = tf.constant(np.tile(taps[None, :, None, None], (1, 1, channels, 1)))
    blurred = tf.nn.depthwise_conv2d(images, rows, [1, 1, 1, 1], "SAME")
    blurred = tf.nn.depthwise_conv2d(blurred, columns, [1, 1, 1, 1], "SAME")
    return images - blurred


def detail_mean_term(generated_detail: Any, real_detail: Any) -> Any:
    """How far the mean detail of a generated batch lies from a real batch's, relative to real detail energy.

    The squared distance between the two batches' mean detail images (a linear-kernel MMD), estimated without
    the bias a finite batch adds (pairs of distinct images only, so an image is never compared with itself and
    the term does not shrink each image's own detail), divided by the real images' mean detail energy. A rib
    cage drawn in the same place in every sample is in the generated mean and not in the real one (real chests
    vary in position and size, so their mean detail is faint), which a discriminator judging one image at a
    time cannot see. About 0 when the two means agree, whatever each image's own detail.

    Args:
        generated_detail: ``(n, h, w, c)`` detail bands (:func:`detail_band`) of generated images, n >= 2.
        real_detail: ``(m, h, w, c)`` detail bands of real images, m >= 2.

    Returns:
        A scalar tensor (may be slightly negative: the estimate is unbiased).
    """
    generated = ops.reshape(ops.cast(generated_detail, "float32"), (ops.shape(generated_detail)[0], -1))
    real = ops.stop_gradient(ops.reshape(ops.cast(real_detail, "float32"), (ops.shape(real_detail)[0], -1)))
    n = ops.cast(ops.shape(generated)[0], "float32")
    m = ops.cast(ops.shape(real)[0], "float32")
    generated_sum = ops.sum(generated, axis=0)
    real_sum = ops.sum(real, axis=0)
    generated_pairs = (ops.sum(generated_sum**2) - ops.sum(generated**2)) / (n * (n - 1.0))
    real_pairs = (ops.sum(real_sum**2) - ops.sum(real**2)) / (m * (m - 1.0))
    cross = ops.sum(generated_sum * real_sum) / (n * m)
    real_energy = ops.sum(real**2) / m
    return (generated_pairs + real_pairs - 2.0 * cross) / (real_energy + 1e-8)


def mode_seeking_term(images: Any, latents: Any) -> Any:
    """MSGAN's mode-seeking term for one batch (lower when distinct latents give distinct images).

    Rows ``i`` and ``i + n // 2`` are paired (an odd last row is left out). For each pair the ratio of the mean
    absolute difference of the images to that of the latents is taken; the term is the mean over pairs of
    ``1 / (ratio + 1e-5)``.

    Args:
        images: ``(n, h, w, c)`` generated images, float32.
        latents: ``(n, latent_dim)`` the latents they were generated from.

    Returns:
        A scalar tensor.
    """
    half = ops.shape(images)[0] // 2
    image_distance = ops.mean(ops.abs(images[:half] - images[half : 2 * half]), axis=(1, 2, 3))
    latent_distance = ops.mean(ops.abs(ops.cast(latents[:half] - latents[half : 2 * half], "float32")), axis=1)
    return ops.mean(1.0 / (image_distance / latent_distance + 1e-5))


class DCGAN(keras.Model):
    """Adversarial training wrapper around a generator and a discriminator.

    Follows the Keras-io DCGAN example: `fit` takes batches of real images in
    [0, 1] and, per step, makes one discriminator update (real and generated
    images concatenated into one forward pass) and then one generator update
    with fresh noise. Targets: real = 1, generated = 0, each jittered by up to
    `label_noise` towards the other class (the example's label-noise trick).

    Example:
        ```python
        generator = build_generator()
        discriminator = build_discriminator()
        gan = DCGAN(discriminator, generator, latent_dim=100, seed=7)
        gan.compile()  # Adam(1e-4) for both, BCE from logits
        gan.fit(dataset_of_images_in_0_1, epochs=150)
        ```

    Args:
        discriminator: Model mapping images to one logit each.
        generator: Model mapping `(batch, latent_dim)` noise to images in [0, 1].
        latent_dim: Noise size; must equal the generator's input size.
        seed: Seed of the training noise and label jitter
            (`keras.random.SeedGenerator`). `None` draws a random seed; to make a
            whole run reproducible also call `keras.utils.set_random_seed` before
            building the networks (weight initialisation and dropout).
        label_noise: Maximum jitter added to the targets, in [0, 0.5).
        label_smoothing: One-sided label smoothing: real targets become `1 - label_smoothing` (Salimans et al.
            2016), in [0, 0.5). 0 (the paper) leaves them at 1.
        augment_policies: DiffAugment transformations applied to every image the discriminator sees, real and
            generated alike (:mod:`cxrcore.models.gan_augment`). Empty (the paper): none.
        instance_noise: Standard deviation of Gaussian noise added to every discriminator input at step 0.
            0 (the paper): none.
        instance_noise_steps: Steps over which `instance_noise` decays linearly to 0; `None` keeps it constant.
        mode_seeking_weight: Weight of the mode-seeking term added to the generator's loss (Mao et al. 2019,
            MSGAN): the generator's batch is split into two halves paired row by row, and the term is the mean
            over pairs of `1 / (d_image / d_latent + 1e-5)`, with mean absolute differences between the paired
            images and between their latents, so the generator is pushed to map distinct latents to distinct
            images. 0 (the paper): none. Needs a batch of at least 2.
        mode_seeking_detail_weight: Weight of the same term computed on the images' detail band
            (:func:`detail_band`, blur std :data:`DETAIL_SIGMA_FRACTION` of the side), so paired latents must
            also differ in their fine structure (where ribs fall), not only in exposure and outline. The plain
            term left every sample with the same rib cage in the same place. 0 (the paper): none. Needs a batch of
            at least 2.
        detail_mean_weight: Weight of :func:`detail_mean_term` between the generator's batch and the step's
            real batch (their detail bands, the same blur as ``mode_seeking_detail_weight``): the generator is
            pushed to stop repeating the same fine structure (one rib cage in one place) in every sample, which
            the two mode-seeking terms did not stop. 0 (the paper): none. Needs a batch of at least 2.
    """

    def __init__(
        self,
        discriminator: keras.Model,
        generator: keras.Model,
        latent_dim: int,
        seed: int | None = None,
        *,
        label_noise: float = 0.05,
        label_smoothing: float = 0.0,
        augment_policies: tuple[str, ...] | list[str] = (),
        instance_noise: float = 0.0,
        instance_noise_steps: int | None = None,
        mode_seeking_weight: float = 0.0,
        mode_seeking_detail_weight: float = 0.0,
        detail_mean_weight: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        generator_latent = generator.input_shape[-1]
        if latent_dim != generator_latent:
            raise ValueError(
                "`latent_dim` must equal the generator's input size "
                f"({generator_latent}). Received: latent_dim={latent_dim}"
            )
        if not 0.0 <= label_noise < 0.5:
            raise ValueError(f"`label_noise` must be in [0, 0.5). Received: label_noise={label_noise}")
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = int(latent_dim)
        self.label_noise = float(label_noise)
        if not 0.0 <= label_smoothing < 0.5:
            raise ValueError(f"`label_smoothing` must be in [0, 0.5). Received: label_smoothing={label_smoothing}")
        if not instance_noise >= 0.0:
            raise ValueError(f"`instance_noise` must be >= 0. Received: instance_noise={instance_noise}")
        if instance_noise_steps is not None and instance_noise_steps < 1:
            raise ValueError(
                f"`instance_noise_steps` must be >= 1 or None. Received: instance_noise_steps={instance_noise_steps}"
            )
        if not mode_seeking_weight >= 0.0:
            raise ValueError(
                f"`mode_seeking_weight` must be >= 0. Received: mode_seeking_weight={mode_seeking_weight}"
            )
        if not mode_seeking_detail_weight >= 0.0:
            raise ValueError(
                "`mode_seeking_detail_weight` must be >= 0. "
                f"Received: mode_seeking_detail_weight={mode_seeking_detail_weight}"
            )
        if not detail_mean_weight >= 0.0:
            raise ValueError(f"`detail_mean_weight` must be >= 0. Received: detail_mean_weight={detail_mean_weight}")
        self.label_smoothing = float(label_smoothing)
        self.detail_mean_weight = float(detail_mean_weight)
        self.mode_seeking_weight = float(mode_seeking_weight)
        self.mode_seeking_detail_weight = float(mode_seeking_detail_weight)
        self.detail_sigma = DETAIL_SIGMA_FRACTION * float(generator.output_shape[1])
        self.augment_policies = validate_policies(augment_policies)
        self.instance_noise = float(instance_noise)
        self.instance_noise_steps = instance_noise_steps
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="gan_seed_generator")
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_real_accuracy_tracker = keras.metrics.Mean(name="d_real_accuracy")
        self.d_fake_accuracy_tracker = keras.metrics.Mean(name="d_fake_accuracy")
        self.d_gradient_norm_tracker = RunningMax(name="d_grad_norm_max")
        self.g_gradient_norm_tracker = RunningMax(name="g_grad_norm_max")
        self.d_optimizer: keras.optimizers.Optimizer | None = None
        self.g_optimizer: keras.optimizers.Optimizer | None = None
        self.loss_fn: keras.losses.Loss | None = None
        # Both sub-networks are functional models built at construction.
        self.built = True

    def compile(
        self,
        d_optimizer: keras.optimizers.Optimizer | None = None,
        g_optimizer: keras.optimizers.Optimizer | None = None,
        loss_fn: keras.losses.Loss | None = None,
        *,
        jit_compile: bool | str = False,
        steps_per_execution: int = 1,
        run_eagerly: bool = False,
    ) -> None:
        """Configures the two optimizers and the loss.

        Call inside `strategy.scope()` when distributing. Under mixed precision
        the optimizers are wrapped in `keras.optimizers.LossScaleOptimizer`.
        Both optimizers are built here (their slots are created eagerly).

        Args:
            d_optimizer: Discriminator optimizer; default Adam(1e-4).
            g_optimizer: Generator optimizer; default Adam(1e-4).
            loss_fn: Loss on logits; default
                `keras.losses.BinaryCrossentropy(from_logits=True)`.
            jit_compile: XLA-compile the train step (`True`, `False` or `"auto"`).
            steps_per_execution: Steps run per `tf.function` call.
            run_eagerly: Run the train step eagerly (debugging).
        """
        super().compile(
            optimizer=None,
            jit_compile=jit_compile,
            steps_per_execution=steps_per_execution,
            run_eagerly=run_eagerly,
        )
        if d_optimizer is None or g_optimizer is None:
            default_d, default_g = default_gan_optimizers()
            d_optimizer = default_d if d_optimizer is None else d_optimizer
            g_optimizer = default_g if g_optimizer is None else g_optimizer
        if d_optimizer is g_optimizer:
            raise ValueError(
                "`d_optimizer` and `g_optimizer` must be distinct optimizer instances. "
                f"Received: d_optimizer={d_optimizer}, g_optimizer={g_optimizer}"
            )
        if _uses_mixed_float16(self.discriminator) or _uses_mixed_float16(self.generator):
            if not isinstance(d_optimizer, keras.optimizers.LossScaleOptimizer):
                d_optimizer = keras.optimizers.LossScaleOptimizer(d_optimizer, name="d_loss_scale")
            if not isinstance(g_optimizer, keras.optimizers.LossScaleOptimizer):
                g_optimizer = keras.optimizers.LossScaleOptimizer(g_optimizer, name="g_loss_scale")
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        if loss_fn is None:
            loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
        self.loss_fn = loss_fn
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [
            self.d_loss_tracker,
            self.g_loss_tracker,
            self.d_real_accuracy_tracker,
            self.d_fake_accuracy_tracker,
            self.d_gradient_norm_tracker,
            self.g_gradient_norm_tracker,
        ]

    def _replica_seed(self) -> tf.Tensor:
        """A fresh stateless seed, distinct on every replica.

        Under ``MirroredStrategy`` each replica runs this step with the same seed-generator state; folding in
        the replica id keeps their noise (and label jitter) independent instead of N copies of one batch.
        """
        seed = tf.cast(self.seed_generator.next(), tf.int64)
        context = tf.distribute.get_replica_context()
        replica_id = context.replica_id_in_sync_group if context is not None else 0
        return tf.random.experimental.stateless_fold_in(seed, tf.cast(replica_id, tf.int32))

    def _noise(self, batch_size: Any) -> Any:
        return tf.random.stateless_normal((batch_size, self.latent_dim), seed=self._replica_seed())

    def _discriminator_view(self, images: Any) -> Any:
        """What the discriminator sees in training: DiffAugment, then annealed instance noise (no-ops by default)."""
        if self.augment_policies:
            images = diff_augment(images, self.augment_policies, self._replica_seed())
        if self.instance_noise > 0.0:
            std = tf.constant(self.instance_noise, tf.float32)
            if self.instance_noise_steps is not None:
                done = tf.cast(self.d_optimizer.iterations, tf.float32) / float(self.instance_noise_steps)
                std = std * tf.maximum(0.0, 1.0 - done)
            images = images + std * tf.random.stateless_normal(tf.shape(images), seed=self._replica_seed())
        return images

    def train_step(self, data: Any) -> dict[str, Any]:
        if self.d_optimizer is None or self.g_optimizer is None or self.loss_fn is None:
            raise ValueError("Call `DCGAN.compile()` before `fit()`. Received: optimizers=None")
        real_images = data[0] if isinstance(data, (tuple, list)) else data
        real_images = ops.cast(real_images, "float32")
        batch_size = ops.shape(real_images)[0]

        # Discriminator update: one forward pass over [generated; real].
        generated_images = self.generator(self._noise(batch_size), training=True)
        combined_images = ops.concatenate([ops.cast(generated_images, "float32"), real_images], axis=0)
        jitter = self.label_noise * tf.random.stateless_uniform((2 * batch_size, 1), seed=self._replica_seed())
        targets = ops.concatenate([ops.zeros((batch_size, 1)), ops.ones((batch_size, 1))], axis=0)
        targets = targets + jitter * (1.0 - 2.0 * targets) - self.label_smoothing * targets
        with tf.GradientTape() as tape:
            logits = self.discriminator(self._discriminator_view(combined_images), training=True)
            d_loss = self.loss_fn(targets, logits)
            scaled_d_loss = self.d_optimizer.scale_loss(d_loss)
        d_weights = self.discriminator.trainable_weights
        d_gradients = tape.gradient(scaled_d_loss, d_weights)
        self.d_optimizer.apply_gradients(zip(d_gradients, d_weights))

        # Generator update: fresh noise, targets "real".
        misleading_targets = ops.ones((batch_size, 1))
        real_detail = detail_band(real_images, self.detail_sigma) if self.detail_mean_weight > 0.0 else None
        with tf.GradientTape() as tape:
            noise = self._noise(batch_size)
            fake_images = ops.cast(self.generator(noise, training=True), "float32")
            fake_logits = self.discriminator(self._discriminator_view(fake_images), training=True)
            g_loss = self.loss_fn(misleading_targets, fake_logits)
            total_g_loss = g_loss
            if self.mode_seeking_weight > 0.0:
                total_g_loss = total_g_loss + self.mode_seeking_weight * mode_seeking_term(fake_images, noise)
            if self.mode_seeking_detail_weight > 0.0 or real_detail is not None:
                detail = detail_band(fake_images, self.detail_sigma)
            if self.mode_seeking_detail_weight > 0.0:
                total_g_loss = total_g_loss + self.mode_seeking_detail_weight * mode_seeking_term(detail, noise)
            if real_detail is not None:
                total_g_loss = total_g_loss + self.detail_mean_weight * detail_mean_term(detail, real_detail)
            scaled_g_loss = self.g_optimizer.scale_loss(total_g_loss)
        g_weights = self.generator.trainable_weights
        g_gradients = tape.gradient(scaled_g_loss, g_weights)
        self.g_optimizer.apply_gradients(zip(g_gradients, g_weights))

        # The Keras loss divides by the replica count; report the per-batch mean.
        replicas = float(_num_replicas())
        self.d_loss_tracker.update_state(d_loss * replicas)
        self.g_loss_tracker.update_state(g_loss * replicas)
        logits = ops.cast(logits, "float32")
        self.d_fake_accuracy_tracker.update_state(ops.mean(ops.cast(logits[:batch_size] < 0.0, "float32")))
        self.d_real_accuracy_tracker.update_state(ops.mean(ops.cast(logits[batch_size:] > 0.0, "float32")))
        # The largest gradient norms of the epoch: a spike (tens of times the usual norm) is what sends Adam's
        # step far and can start a breakdown; d_clipnorm / g_clipnorm bound them.
        self.d_gradient_norm_tracker.update_state(_gradient_norm(d_gradients, self.d_optimizer))
        self.g_gradient_norm_tracker.update_state(_gradient_norm(g_gradients, self.g_optimizer))
        return {metric.name: metric.result() for metric in self.metrics}

    @property
    def averages_generator(self) -> bool:
        """Whether the generator's optimizer keeps a moving average of its weights (`use_ema`)."""
        return bool(_moving_averages(self.g_optimizer))

    @contextlib.contextmanager
    def averaged_generator(self) -> Iterator[keras.Model]:
        """Lends the generator its optimizer's moving-average weights for the block, then puts the trained back.

        Without `use_ema` on the generator's optimizer, or before its first step (Keras starts the average at
        the first update, from zeros), the generator is yielded unchanged. Call it outside `fit` (between
        steps, in a callback, after training): the trained weights and the optimizer state are left exactly as
        they were.

        Yields:
            The generator, holding the averaged weights inside the block.

        Raises:
            ValueError: If the averages do not match the generator's trainable weights.
        """
        averages = _moving_averages(self.g_optimizer)
        if not averages or int(ops.convert_to_numpy(self.g_optimizer.iterations)) == 0:
            yield self.generator
            return
        weights = self.generator.trainable_variables
        if len(averages) != len(weights) or any(
            tuple(average.shape) != tuple(weight.shape) for average, weight in zip(averages, weights, strict=False)
        ):
            raise ValueError(
                "The generator optimizer's moving averages do not match the generator's trainable weights. "
                f"Received: averages={len(averages)}, weights={len(weights)}"
            )
        trained = [ops.convert_to_numpy(weight) for weight in weights]
        try:
            for weight, average in zip(weights, averages, strict=True):
                weight.assign(average)
            yield self.generator
        finally:
            for weight, value in zip(weights, trained, strict=True):
                weight.assign(value)

    def generate(
        self,
        num_images: int,
        seed: int | None = None,
        *,
        batch_size: int = 64,
        as_uint8: bool = False,
        averaged: bool = True,
    ) -> np.ndarray:
        """Generates images in batches (no I/O).

        Args:
            num_images: Number of images to generate.
            seed: Seed of the noise (NumPy `default_rng`); the same seed gives the
                same images. `None` draws fresh noise.
            batch_size: Images per generator call.
            as_uint8: Return uint8 in [0, 255] instead of float32 in [0, 1].
            averaged: Sample with the moving-average weights when the generator's
                optimizer keeps them (`averaged_generator`); `False`: the trained weights.

        Returns:
            Array of shape `(num_images, size, size, channels)`.

        Raises:
            ValueError: If `num_images` is negative or `batch_size` < 1.
        """
        if num_images < 0:
            raise ValueError(f"`num_images` must be >= 0. Received: num_images={num_images}")
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1. Received: batch_size={batch_size}")
        rng = np.random.default_rng(seed)
        noise = rng.standard_normal((num_images, self.latent_dim)).astype(np.float32)
        lender = self.averaged_generator() if averaged else contextlib.nullcontext(self.generator)
        with lender as generator:
            chunks = [
                ops.convert_to_numpy(generator(noise[start : start + batch_size], training=False))
                for start in range(0, num_images, batch_size)
            ]
        if chunks:
            images = np.concatenate(chunks, axis=0).astype(np.float32)
        else:
            images = np.zeros((0, *self.generator.output_shape[1:]), dtype=np.float32)
        return to_uint8(images) if as_uint8 else images

    def score(self, images: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        """Returns the discriminator's probability that each image is real.

        Args:
            images: `(n, size, size, channels)` float images in [0, 1] or uint8
                images in [0, 255].
            batch_size: Images per discriminator call.

        Returns:
            float32 array of shape `(n,)` with values in [0, 1].
        """
        images = np.asarray(images)
        if images.dtype == np.uint8:
            images = images.astype(np.float32) / 255.0
        images = images.astype(np.float32)
        probabilities = [
            ops.convert_to_numpy(ops.sigmoid(self.discriminator(images[start : start + batch_size], training=False)))
            for start in range(0, len(images), batch_size)
        ]
        if not probabilities:
            return np.zeros((0,), dtype=np.float32)
        return np.concatenate(probabilities, axis=0).reshape(-1).astype(np.float32)
