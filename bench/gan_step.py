"""Benchmark: training images/s of our ``DCGAN.train_step`` vs a straightforward Keras-io style reference.

Every method trains the same architecture (``build_generator`` / ``build_discriminator`` at the same size, width
and seed) with Adam(1e-4) and binary cross-entropy on logits, on the same batch size, in this one process:

- ``ours: fit``: ``cxrcore.models.dcgan.DCGAN.fit`` exactly as ``cxr-gan-train`` runs it (default settings).
- ``ours: fit + steps_per_execution=K``: the same, ``K`` train steps per ``tf.function`` call.
- ``ours: fit + XLA`` (and ``+ steps_per_execution``): ``compile(jit_compile=True)``; what ``--xla`` gives the job.
- ``reference``: the Keras-io DCGAN ``train_step`` written out here: a ``tf.function`` step with two gradient
  tapes and separate generator forward passes for the discriminator and generator updates, called from a
  Python ``for`` loop over a ``tf.data`` dataset.

Input: one fixed batch of uniform-noise "images" in [0, 1] repeated (``Dataset.from_tensors(...).repeat()``), so
the numbers measure the train step, not the input pipeline. Warm-up (tracing, XLA compilation, first steps) is
excluded. Methods run interleaved for ``--repeats`` rounds and each reports its fastest round (as ``timeit``
does: other load on a shared machine only ever adds time); the median round is in the JSON too. Interleaving
keeps a burst of outside load from favouring one side. ``cpu s/step`` (process CPU time over all threads, median
round) is the work a step costs, which outside load barely changes; on a GPU it is host overhead only.

Defaults: on a GPU the paper's setting (64 px, width 1.0, batch 32, 20 steps); on a CPU a small one (32 px,
width 0.125, batch 32, 10 steps) so the run takes one to two minutes on two idle cores. Any flag overrides.

Usage: ``python bench/gan_step.py [--image-size 64] [--batch-size 32] [--steps 20] [--width-multiplier 1.0]
[--steps-per-execution 4] [--repeats 3] [--out bench/results/gan_step.json]``. Prints a table and the ratio
ours/reference, and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GPU_DEFAULTS = {"image_size": 64, "batch_size": 32, "steps": 20, "width_multiplier": 1.0}
CPU_DEFAULTS = {"image_size": 32, "batch_size": 32, "steps": 10, "width_multiplier": 0.125}
LATENT_DIM = 100
LEARNING_RATE = 1e-4
SEED = 0


def _build_networks(image_size: int, width_multiplier: float):
    import keras

    from cxrcore.models.dcgan import build_discriminator, build_generator

    keras.utils.set_random_seed(SEED)
    generator = build_generator(LATENT_DIM, width_multiplier=width_multiplier, output_size=image_size, channels=3)
    discriminator = build_discriminator(input_size=image_size, channels=3, width_multiplier=width_multiplier)
    return generator, discriminator


def make_ours(dataset, image_size: int, width_multiplier: float, *, jit_compile: bool, steps_per_execution: int):
    """Returns ``run(steps)`` training our DCGAN with ``fit`` for ``steps`` steps (one epoch)."""
    import keras

    from cxrcore.models.dcgan import DCGAN, default_gan_optimizers

    generator, discriminator = _build_networks(image_size, width_multiplier)
    model = DCGAN(discriminator, generator, latent_dim=LATENT_DIM, seed=SEED)
    d_optimizer, g_optimizer = default_gan_optimizers(LEARNING_RATE)
    model.compile(
        d_optimizer=d_optimizer,
        g_optimizer=g_optimizer,
        loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )

    def run(steps: int) -> float:
        history = model.fit(dataset, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
        return float(history.history["g_loss"][-1])  # fit returns after the last step: already synchronised

    return run


def make_reference(dataset, image_size: int, width_multiplier: float):
    """Returns ``run(steps)`` of the Keras-io DCGAN train step: two tapes, two generator passes, Python loop."""
    import keras
    import tensorflow as tf

    generator, discriminator = _build_networks(image_size, width_multiplier)
    d_optimizer = keras.optimizers.Adam(learning_rate=LEARNING_RATE)
    g_optimizer = keras.optimizers.Adam(learning_rate=LEARNING_RATE)
    loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function
    def train_step(real_images):
        batch_size = tf.shape(real_images)[0]
        random_latent_vectors = tf.random.normal((batch_size, LATENT_DIM))
        generated_images = generator(random_latent_vectors, training=True)
        combined_images = tf.concat([generated_images, real_images], axis=0)
        labels = tf.concat([tf.zeros((batch_size, 1)), tf.ones((batch_size, 1))], axis=0)
        labels += 0.05 * tf.random.uniform(tf.shape(labels))
        with tf.GradientTape() as tape:
            predictions = discriminator(combined_images, training=True)
            d_loss = loss_fn(labels, predictions)
        grads = tape.gradient(d_loss, discriminator.trainable_weights)
        d_optimizer.apply_gradients(zip(grads, discriminator.trainable_weights))

        random_latent_vectors = tf.random.normal((batch_size, LATENT_DIM))
        misleading_labels = tf.ones((batch_size, 1))
        with tf.GradientTape() as tape:
            predictions = discriminator(generator(random_latent_vectors, training=True), training=True)
            g_loss = loss_fn(misleading_labels, predictions)
        grads = tape.gradient(g_loss, generator.trainable_weights)
        g_optimizer.apply_gradients(zip(grads, generator.trainable_weights))
        return d_loss, g_loss

    def run(steps: int) -> float:
        g_loss = None
        for real_images in dataset.take(steps):
            _d_loss, g_loss = train_step(real_images)
        return float(g_loss)  # fetching the value waits for the last step

    return run


def _timed(run: Callable[[int], float], steps: int) -> tuple[float, float]:
    """Wall seconds and process CPU seconds (all threads) of ``run(steps)``."""
    start, start_cpu = time.perf_counter(), time.process_time()
    run(steps)
    return time.perf_counter() - start, time.process_time() - start_cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=None, help="GPU default 64, CPU default 32")
    parser.add_argument("--batch-size", type=int, default=None, help="default 32")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per round (GPU 20, CPU 10)")
    parser.add_argument("--width-multiplier", type=float, default=None, help="GPU default 1.0, CPU default 0.125")
    parser.add_argument("--steps-per-execution", type=int, default=5, help="K of the steps_per_execution rows")
    parser.add_argument("--warmup-steps", type=int, default=5, help="rounded up to a multiple of K")
    parser.add_argument("--repeats", type=int, default=4, help="interleaved timing rounds (fastest reported)")
    parser.add_argument("--no-xla", action="store_true", help="skip the XLA rows")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gan_step.json")
    args = parser.parse_args(argv)

    import keras
    import numpy as np
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    defaults = GPU_DEFAULTS if gpus else CPU_DEFAULTS
    image_size = args.image_size or defaults["image_size"]
    batch_size = args.batch_size or defaults["batch_size"]
    steps = args.steps or defaults["steps"]
    width = args.width_multiplier or defaults["width_multiplier"]
    for name, value in (("steps", steps), ("batch_size", batch_size), ("repeats", args.repeats)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1. Received: {name}={value}")
    spe = args.steps_per_execution
    if spe < 2 or steps % spe:
        raise ValueError(
            f"steps_per_execution must be >= 2 and divide steps ({steps}). Received: steps_per_execution={spe}"
        )

    rng = np.random.default_rng(SEED)
    batch = rng.uniform(0.0, 1.0, size=(batch_size, image_size, image_size, 3)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensors(batch).repeat().prefetch(2)

    methods: dict[str, Callable[[int], float]] = {
        "reference (keras-io, tf.function)": make_reference(dataset, image_size, width),
        "ours: fit": make_ours(dataset, image_size, width, jit_compile=False, steps_per_execution=1),
        f"ours: fit + steps_per_execution={spe}": make_ours(
            dataset, image_size, width, jit_compile=False, steps_per_execution=spe
        ),
    }
    if not args.no_xla:
        methods["ours: fit + XLA"] = make_ours(dataset, image_size, width, jit_compile=True, steps_per_execution=1)
        methods[f"ours: fit + XLA + steps_per_execution={spe}"] = make_ours(
            dataset, image_size, width, jit_compile=True, steps_per_execution=spe
        )

    warmup_steps = -(-max(args.warmup_steps, 1) // spe) * spe
    warmup: dict[str, float] = {}
    for name, run in methods.items():
        # Warm-up: tracing / XLA compilation plus a few steps (a multiple of steps_per_execution).
        warmup[name] = round(_timed(run, warmup_steps)[0], 3)
    rounds: dict[str, list[float]] = {name: [] for name in methods}
    cpu_rounds: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.repeats):
        for name, run in methods.items():
            wall, cpu = _timed(run, steps)
            rounds[name].append(wall)
            cpu_rounds[name].append(cpu)

    rows = []
    for name in methods:
        seconds = min(rounds[name])
        median = statistics.median(rounds[name])
        rows.append(
            {
                "method": name,
                "steps": steps,
                "seconds": round(seconds, 4),
                "images_per_s": round(steps * batch_size / seconds, 2),
                "median_seconds": round(median, 4),
                "median_images_per_s": round(steps * batch_size / median, 2),
                "rounds_seconds": [round(value, 4) for value in rounds[name]],
                "cpu_seconds_per_step": round(statistics.median(cpu_rounds[name]) / steps, 4),
                "warmup_seconds": warmup[name],
            }
        )
    reference = rows[0]["images_per_s"]
    reference_median = rows[0]["median_images_per_s"]
    for row in rows:
        row["ratio_vs_reference"] = round(row["images_per_s"] / reference, 3)
        row["median_ratio_vs_reference"] = round(row["median_images_per_s"] / reference_median, 3)

    width_column = max(len(row["method"]) for row in rows)
    header = f"{'steps':>5}  {'seconds':>8}  {'images/s':>9}  {'vs ref':>6}  {'median vs ref':>13}  {'cpu s/step':>10}"
    print(f"{'method':<{width_column}}  {header}")
    for row in rows:
        print(
            f"{row['method']:<{width_column}}  {row['steps']:>5}  {row['seconds']:>8.3f}  "
            f"{row['images_per_s']:>9.1f}  {row['ratio_vs_reference']:>6.3f}  {row['median_ratio_vs_reference']:>13.3f}"
            f"  {row['cpu_seconds_per_step']:>10.3f}"
        )
    ours = next(row for row in rows if row["method"] == "ours: fit")
    best = max(rows[1:], key=lambda row: row["images_per_s"])
    print(f"ratio ours/reference (ours: fit): {ours['ratio_vs_reference']:.3f}")
    print(f"best ours: {best['method']} at {best['ratio_vs_reference']:.3f}x the reference")

    device = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus]
    result = {
        "benchmark": "gan_step",
        "config": {
            "image_size": image_size,
            "batch_size": batch_size,
            "steps": steps,
            "width_multiplier": width,
            "latent_dim": LATENT_DIM,
            "steps_per_execution": spe,
            "warmup_steps": warmup_steps,
            "repeats": args.repeats,
            "statistic": "fastest of the interleaved rounds (median also given)",
            "input": "one fixed batch repeated (Dataset.from_tensors(...).repeat())",
        },
        "results": rows,
        "ratio_ours_over_reference": ours["ratio_vs_reference"],
        "best_ours": {"method": best["method"], "ratio_vs_reference": best["ratio_vs_reference"]},
        "environment": {
            "device": device or ["CPU"],
            "cpu_count": os.cpu_count(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
