"""Model files with sha256 checks: saved to a temporary file and verified, fetched against ``_SUCCESS``.

See docs/architecture.md#commit-protocol. Writing: :func:`save_model` saves a full model (``.keras``) or its
weights (``.weights.h5``) to a temporary file beside the target, checks that the file is a complete archive,
takes its sha256 and only then moves it into place; :func:`put_verified` stages it in a commit and refuses
when the sha256 the transaction records is not the one taken at save time. Reading: :func:`fetch_verified`
downloads objects of a committed output and checks each against the sha256 its ``_SUCCESS`` marker records.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cxrcore.storage import (
    IntegrityError,
    Marker,
    Store,
    Transaction,
    join_key,
    sha256_file,
)

__all__ = ["SavedFile", "check_recorded", "fetch_verified", "inference_copy", "put_verified", "save_model"]

_KERAS_SUFFIX = ".keras"
_WEIGHTS_SUFFIX = ".weights.h5"


@dataclasses.dataclass(frozen=True)
class SavedFile:
    """A model file on local disk and the sha256 taken when it was written.

    Attributes:
        path: The file.
        sha256: Hex sha256 of its content at save time.
    """

    path: Path
    sha256: str


def _check_archive(path: Path, weights_only: bool) -> None:
    """Raises ``OSError`` unless ``path`` is a complete ``.weights.h5`` (HDF5) or ``.keras`` (zip) file."""
    if weights_only:
        import h5py

        if not h5py.is_hdf5(path):
            raise OSError(f"{path} was written but is not an HDF5 weights file")
        return
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
            names = set(archive.namelist())
    except zipfile.BadZipFile as exc:
        raise OSError(f"{path} was written but is not a .keras archive: {exc}") from exc
    if broken is not None or "config.json" not in names:
        raise OSError(f"{path} was written but is incomplete (member {broken or 'config.json'} is bad or missing)")


def save_model(model: Any, path: str | os.PathLike[str], *, weights_only: bool = False) -> SavedFile:
    """Saves ``model`` (or its weights) to ``path`` through a verified temporary file.

    Args:
        model: A Keras model.
        path: Target file: ``*.keras`` for the full model, ``*.weights.h5`` with ``weights_only``.
        weights_only: Save the weights only (``model.save_weights``).

    Returns:
        The :class:`SavedFile` (``path`` and the sha256 taken before the file was moved into place).

    Raises:
        ValueError: ``path`` does not end with the suffix Keras needs.
        OSError: The written file is not a complete archive.
    """
    target = Path(path)
    suffix = _WEIGHTS_SUFFIX if weights_only else _KERAS_SUFFIX
    if not target.name.endswith(suffix):
        kind = "weights" if weights_only else "model"
        raise ValueError(f"A {kind} file must end with {suffix}. Received: path={target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{uuid.uuid4().hex[:12]}-{target.name}")  # keeps the suffix Keras checks
    try:
        if weights_only:
            model.save_weights(temporary)
        else:
            model.save(temporary)
        _check_archive(temporary, weights_only)
        digest = sha256_file(temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return SavedFile(path=target, sha256=digest)


def put_verified(transaction: Transaction, name: str, saved: SavedFile) -> None:
    """Stages a saved file as ``name`` and checks that the transaction records the sha256 taken at save time.

    Raises:
        IntegrityError: The file changed between :func:`save_model` and the upload.
    """
    transaction.put_file(name, saved.path)
    check_recorded(transaction, {name: saved})


def check_recorded(transaction: Transaction, saved: Mapping[str, SavedFile]) -> None:
    """Checks that every staged ``name`` of ``saved`` carries the sha256 taken at save time.

    Raises:
        IntegrityError: A file is not staged, or it changed between :func:`save_model` and the upload.
    """
    for name, file in saved.items():
        recorded = transaction.outputs.get(name, {}).get("sha256")
        if recorded != file.sha256:
            raise IntegrityError(
                f"{file.path} changed between saving (sha256 {file.sha256}) and staging it as "
                f"{transaction.prefix}/{name} (sha256 {recorded})"
            )


def fetch_verified(store: Store, prefix: str, marker: Marker, targets: Mapping[str, Path]) -> dict[str, Path]:
    """Downloads objects of the committed output ``prefix``, each checked against its ``_SUCCESS`` sha256.

    Args:
        store: The store.
        prefix: The committed output.
        marker: Its ``_SUCCESS`` marker.
        targets: ``{name relative to prefix: local path}``.

    Returns:
        ``{name: local path}``.

    Raises:
        ValueError: The marker does not list a requested name.
        cxrcore.storage.IntegrityError: A downloaded object does not match its recorded sha256.
    """
    missing = sorted(name for name in targets if name not in marker.outputs)
    if missing:
        raise ValueError(f"{prefix} lacks {', '.join(missing)}. Received: outputs={sorted(marker.outputs)}")
    return {
        name: store.get_file(join_key(prefix, name), target, sha256=marker.outputs[name]["sha256"])
        for name, target in targets.items()
    }


def inference_copy(model: Any) -> Any:
    """The model without optimizer state, built under the default strategy: what is scored and saved.

    Call it outside any ``strategy.scope()``: the copy then predicts on one device, so a batch of ``n`` images
    gives ``n`` probabilities also after training under ``MirroredStrategy``. The copy keeps the layers' dtype
    policies (mixed precision) and takes the trained weights.
    """
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy
