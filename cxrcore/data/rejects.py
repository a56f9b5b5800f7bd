"""The one rejection type of the image decoders (Pillow formats and DICOM); no dependencies, so both can use it."""

from __future__ import annotations

__all__ = ["ImageRejected"]


class ImageRejected(Exception):
    """An input that cannot (or must not) be turned into a training image.

    :func:`decode_image` raises it with a reason from :data:`REJECTION_REASONS`;
    :class:`cxrcore.data.sources.SourceFileRejected` (a subclass) is raised when a source refuses a file while
    reading it, so one ``except ImageRejected`` around ``read()`` and ``decode_image()`` covers both.

    Attributes:
        reason: Short machine code, e.g. ``"truncated"``.
        detail: Human-readable explanation.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self):
        # Keeps the exception picklable across process pools (the default would call __init__ with one arg).
        return (type(self), (self.reason, self.detail))
