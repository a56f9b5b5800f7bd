"""``cxr-train-classifier``: train one classifier (model x condition x seed) and evaluate it on the real test set."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``classifier-train`` image; returns the exit code."""
    from cxrcore.config import TrainClassifierSettings
    from cxrcore.runtime import run_job
    from cxrcore.train_classifier import run

    return run_job("cxr-train-classifier", TrainClassifierSettings, run, argv)


if __name__ == "__main__":
    sys.exit(main())
