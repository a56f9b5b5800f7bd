"""``cxr-prepare``: import a Kaggle folder/zip, a NORMAL/ PNEUMONIA/ folder or an S3 prefix as a dataset version."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cxrcore.jobs_table import run_entry


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``prepare`` image (its Settings and ``run()``: :data:`cxrcore.jobs_table.JOBS`)."""
    return run_entry("prepare", argv)


if __name__ == "__main__":
    sys.exit(main())
