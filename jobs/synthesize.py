"""``cxr-synthesize``: generate one class's synthetic X-rays with its DCGAN, select, check and publish them."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cxrcore.jobs_table import run_entry


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``synthesize`` image (its Settings and ``run()``: :data:`cxrcore.jobs_table.JOBS`)."""
    return run_entry("synthesize", argv)


if __name__ == "__main__":
    sys.exit(main())
