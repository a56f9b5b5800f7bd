"""Device set-up of a training job, done once: memory growth, strategy, mixed precision, XLA.

See docs/architecture.md#layers (ML runtime). :func:`configure_devices` must run before the job's first
TensorFlow op: GPU memory growth can only be set on devices that are not initialised yet.

* Strategy: ``tf.distribute.MirroredStrategy`` when more than one GPU is visible (a batch size is then the
  *global* batch, split across replicas), the default strategy otherwise.
* ``mixed_precision`` (``mixed_float16``) and ``xla`` (``jit_compile`` of the train step) apply on GPU only; on a
  CPU-only machine they are logged as ignored (``gpu_settings_ignored``) and recorded as ``False``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
from collections.abc import Iterator
from typing import Any

__all__ = ["MIXED_PRECISION_POLICY", "Devices", "configure_devices", "dtype_policy"]

#: The Keras dtype policy of ``mixed_precision=true``.
MIXED_PRECISION_POLICY = "mixed_float16"


@dataclasses.dataclass(frozen=True)
class Devices:
    """Where a job trains and which accelerator features are in effect.

    Attributes:
        strategy: The ``tf.distribute`` strategy models are built and trained under.
        gpu_names: Device name of every visible GPU.
        mixed_precision: Whether ``mixed_float16`` is in effect (requested and a GPU is visible).
        xla: Whether train steps are ``jit_compile``d (requested and a GPU is visible).
    """

    strategy: Any
    gpu_names: tuple[str, ...]
    mixed_precision: bool
    xla: bool

    @property
    def replicas(self) -> int:
        """Replicas a global batch is split across."""
        return int(self.strategy.num_replicas_in_sync)

    def describe(self) -> dict[str, Any]:
        """The ``device`` record of ``gan.json`` and ``metrics.json``: hardware, effective flags, versions."""
        import keras
        import tensorflow as tf

        return {
            "strategy": type(self.strategy).__name__,
            "replicas": self.replicas,
            "gpus": list(self.gpu_names),
            "gpu_count": len(self.gpu_names),
            "cpu_count": os.cpu_count(),
            "mixed_precision": self.mixed_precision,
            "xla": self.xla,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
        }


def _gpu_name(tf: Any, gpu: Any) -> str:
    try:
        return str(tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name))
    except (RuntimeError, ValueError):
        return str(gpu.name)


def configure_devices(*, mixed_precision: bool, xla: bool, logger: Any) -> Devices:
    """Turns on GPU memory growth and picks the strategy and the effective mixed-precision and XLA flags.

    Args:
        mixed_precision: Whether the settings ask for ``mixed_float16``.
        xla: Whether the settings ask for XLA (``False`` for jobs without that setting).
        logger: structlog logger; warns ``gpu_settings_ignored`` when a GPU-only setting meets no GPU.

    Returns:
        The :class:`Devices` in effect.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        with contextlib.suppress(RuntimeError, ValueError):  # already initialised (an earlier job in-process)
            tf.config.experimental.set_memory_growth(gpu, True)
    strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    requested = {"mixed_precision": mixed_precision, "xla": xla}
    ignored = [name for name, wanted in requested.items() if wanted and not gpus]
    if ignored:
        logger.warning("gpu_settings_ignored", settings=ignored, reason="no GPU visible; training on CPU")
    return Devices(
        strategy=strategy,
        gpu_names=tuple(_gpu_name(tf, gpu) for gpu in gpus),
        mixed_precision=bool(mixed_precision and gpus),
        xla=bool(xla and gpus),
    )


@contextlib.contextmanager
def dtype_policy(mixed_precision: bool) -> Iterator[None]:
    """Sets Keras' global dtype policy to ``mixed_float16`` inside the block when asked; restores it after.

    Layers take the policy when they are built, so models built inside the block keep it (saved with them).

    Args:
        mixed_precision: Whether to switch to :data:`MIXED_PRECISION_POLICY` (``False``: leave it alone).
    """
    import keras

    previous = keras.config.dtype_policy()
    if mixed_precision:
        keras.config.set_dtype_policy(MIXED_PRECISION_POLICY)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
