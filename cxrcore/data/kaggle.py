"""The Kaggle ``chest_xray`` layout: a file's class and original split from its folders, its patient from its name.

See docs/architecture.md#data-flow. The import (:mod:`cxrcore.data.ingest`) reads every source through these two
functions, whatever its kind (folder, zip, S3 prefix): :func:`classify_path` and :func:`parse_patient_id`. The
demo phantoms (:mod:`cxrcore.data.demo`) are named so that they parse the same way.
"""

from __future__ import annotations

from typing import NamedTuple

from cxrcore.vocab import CLASS_NAMES, KAGGLE_IM_PATTERN, KAGGLE_PERSON_PATTERN

__all__ = ["SPLIT_NAMES", "PatientId", "classify_path", "parse_patient_id"]

#: The Kaggle set's split folders.
SPLIT_NAMES: tuple[str, ...] = ("train", "test", "val")


class PatientId(NamedTuple):
    """A patient identifier derived from a file name.

    Attributes:
        id: The identifier, e.g. ``"person124"`` or ``"NORMAL2-IM-1427"`` (original case kept).
        parsed: ``True`` when a known naming scheme matched; ``False`` when the file stem was used instead (an
            unknown file is its own patient).
    """

    id: str
    parsed: bool


def parse_patient_id(filename: str) -> PatientId:
    """Derives the patient of a Kaggle ``chest_xray`` file from its name.

    Known schemes (case-insensitive match, original case kept in the result):

    * ``person124_virus_231.jpeg``, ``person447_virus_921_1.jpeg`` -> ``person124``, ``person447``;
    * ``IM-0115-0001.jpeg``, ``IM-0429-0001-0002.jpeg`` -> ``IM-0115``, ``IM-0429``;
    * ``NORMAL2-IM-1427-0001.jpeg``, ``PHANTOMN-IM-0007-0002.jpeg`` -> ``NORMAL2-IM-1427``, ``PHANTOMN-IM-0007``.

    Args:
        filename: A file name or a POSIX path (only the last component is used).

    Returns:
        ``PatientId(id, parsed=True)`` for a known scheme, else ``PatientId(stem, parsed=False)``.

    Raises:
        ValueError: If ``filename`` is not a non-empty string.
    """
    if not isinstance(filename, str) or not filename.strip("/"):
        raise ValueError(f"filename must be a non-empty string. Received: filename={filename!r}")
    name = filename.rstrip("/").rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
    for pattern in (KAGGLE_PERSON_PATTERN, KAGGLE_IM_PATTERN):
        match = pattern.match(stem)
        if match:
            return PatientId(match.group(1), True)
    return PatientId(stem, False)


def classify_path(path: str) -> tuple[str | None, str | None]:
    """Reads the class and the original split of a file from the folders on its path.

    The class is the nearest folder named ``NORMAL`` or ``PNEUMONIA`` (any case; returned upper case); the split
    is the nearest folder named ``train``, ``test`` or ``val`` (any case; returned lower case) above that class
    folder. The file name itself is never used.

    Examples:
        ``chest_xray/train/NORMAL/x.jpeg`` -> ``("NORMAL", "train")``;
        ``chest_xray/chest_xray/test/PNEUMONIA/y.jpeg`` -> ``("PNEUMONIA", "test")``;
        ``NORMAL/z.png`` -> ``("NORMAL", None)``; ``misc/a.png`` -> ``(None, None)``.

    Args:
        path: POSIX path relative to the source root.

    Returns:
        ``(class_name, split)``, either of which may be ``None``.
    """
    if not isinstance(path, str):
        raise ValueError(f"path must be a string. Received: path={path!r}")
    folders = [part for part in path.split("/") if part][:-1]
    for class_index in range(len(folders) - 1, -1, -1):
        class_name = folders[class_index].upper()
        if class_name in CLASS_NAMES:
            for split_index in range(class_index - 1, -1, -1):
                split = folders[split_index].lower()
                if split in SPLIT_NAMES:
                    return class_name, split
            return class_name, None
    return None, None
