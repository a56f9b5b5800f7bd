"""``cxr-gan-train``: train the DCGAN of one class on a dataset version's training split, checkpointed and resumable.

Example::

    cxr-gan-train --store s3://cxr/root --run-id wf-abc --dataset chest-xray --class-name PNEUMONIA

Writes ``runs/<run_id>/gan/<CLASS>/`` (see :mod:`cxrcore.gan_train`); prints the JSON summary on stdout.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any


def _run(settings: Any) -> dict[str, Any]:
    """Imports TensorFlow only once the settings are valid (``--help`` and bad flags answer at once)."""
    from cxrcore.gan_train import run

    return run(settings)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gan-train`` image; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO lines would break JSON logs
    from cxrcore.config import GanTrainSettings
    from cxrcore.runtime import run_job

    return run_job("cxr-gan-train", GanTrainSettings, _run, argv)


if __name__ == "__main__":
    sys.exit(main())
