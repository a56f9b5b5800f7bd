"""``cxr-train-classifier``: train one classifier (model x condition x seed) and evaluate it on the real test set."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cxrcore.jobs_table import run_entry


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``classifier-train`` image (its Settings and ``run()``: :data:`cxrcore.jobs_table.JOBS`)."""
    return run_entry("train-classifier", argv)


if __name__ == "__main__":
    sys.exit(main())
