"""``cxr-synthesize``: generate one class's synthetic X-rays with its DCGAN, select, check and publish them."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``synthesize`` image; returns the exit code."""
    from cxrcore.config import SynthesizeSettings
    from cxrcore.runtime import run_job
    from cxrcore.synthesize import run

    return run_job("cxr-synthesize", SynthesizeSettings, run, argv)


if __name__ == "__main__":
    sys.exit(main())
