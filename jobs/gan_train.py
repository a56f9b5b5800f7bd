"""``cxr-gan-train``: train the DCGAN of one class on a dataset version's training split, checkpointed and resumable.

Example::

    cxr-gan-train --store s3://cxr/root --run-id wf-abc --dataset chest-xray --class-name PNEUMONIA

Writes ``runs/<run_id>/gan/<CLASS>/`` (see :mod:`cxrcore.gan_train`); prints the JSON summary on stdout.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cxrcore.jobs_table import run_entry


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gan-train`` image (its Settings and ``run()``: :data:`cxrcore.jobs_table.JOBS`)."""
    return run_entry("gan-train", argv)


if __name__ == "__main__":
    sys.exit(main())
