"""``cxr-report``: collect every classifier output of a run into the comparison report (no TensorFlow)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``report`` image; returns the exit code."""
    from cxrcore.config import ReportSettings
    from cxrcore.report.job import run
    from cxrcore.runtime import run_job

    return run_job("cxr-report", ReportSettings, run, argv)


if __name__ == "__main__":
    sys.exit(main())
