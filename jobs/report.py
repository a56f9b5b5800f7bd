"""``cxr-report``: collect every classifier output of a run into the comparison report (no TensorFlow)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cxrcore.jobs_table import run_entry


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``report`` image (its Settings and ``run()``: :data:`cxrcore.jobs_table.JOBS`)."""
    return run_entry("report", argv)


if __name__ == "__main__":
    sys.exit(main())
