"""``cxr-prepare``: import a Kaggle folder/zip, a NORMAL/ PNEUMONIA/ folder or an S3 prefix as a dataset version."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``prepare`` image; returns the exit code."""
    from cxrcore.config import PrepareSettings
    from cxrcore.data.ingest import run
    from cxrcore.runtime import run_job

    return run_job("cxr-prepare", PrepareSettings, run, argv)


if __name__ == "__main__":
    sys.exit(main())
