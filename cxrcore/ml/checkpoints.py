"""The checkpoint series of a training output: commit, one pruning rule, resume candidates.

See docs/architecture.md#store-layout and #commit-protocol. A training job that writes the output ``<prefix>``
commits its checkpoints as ``<prefix>/checkpoints/epoch-NNNN`` (``NNNN`` = completed epochs, at least four
digits), each its own committed output with its own ``_SUCCESS`` marker; publishing ``<prefix>`` leaves them
alone (``preserve=(CHECKPOINTS_DIR,)``). A checkpoint belongs to a run's series when its marker's inputs hash is
that of :attr:`CheckpointSeries.inputs_for` of its epoch: the GAN trainer passes ``{"trajectory": ..., "epoch":
N}`` (so a longer run of the same trajectory resumes), the classifier trainer its output's inputs.

The one pruning rule, applied after every commit of epoch ``N``: the newest :data:`CHECKPOINTS_KEPT`
checkpoints of the series at or below ``N`` stay; the series' checkpoints above ``N`` (left by an earlier,
longer run) stay too, as valid resume points; every other folder (older checkpoints of the series, uncommitted
leftovers, checkpoints made from other inputs) is deleted, marker first, so no reader ever sees half a
checkpoint as committed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cxrcore.ml.model_io import SavedFile, check_recorded
from cxrcore.storage import MARKER_NAME, Marker, Store, hash_inputs, join_key
from cxrcore.vocab import CHECKPOINT_NAME_PATTERN

__all__ = [
    "CHECKPOINTS_DIR",
    "CHECKPOINTS_KEPT",
    "STATE_FILE",
    "Checkpoint",
    "CheckpointSeries",
    "checkpoint_key",
    "read_state",
    "write_state",
]

#: Sub-prefix of an output holding its checkpoints.
CHECKPOINTS_DIR = "checkpoints"
#: Committed checkpoints kept per series (at or below the newest epoch written).
CHECKPOINTS_KEPT = 2
#: The JSON document of a checkpoint: the epoch and whatever the trainer needs to continue.
STATE_FILE = "state.json"


def checkpoint_key(prefix: str, epoch: int) -> str:
    """``<prefix>/checkpoints/epoch-NNNN`` (``epoch`` = number of completed epochs, at least 1)."""
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
        raise ValueError(f"epoch must be a positive integer. Received: epoch={epoch!r}")
    return join_key(prefix, CHECKPOINTS_DIR, f"epoch-{epoch:04d}")


def write_state(directory: Path, state: Mapping[str, Any]) -> Path:
    """Writes ``state.json`` into a staged checkpoint directory (indented, sorted keys, UTF-8)."""
    path = Path(directory) / STATE_FILE
    path.write_bytes(json.dumps(state, indent=2, sort_keys=True, default=str).encode())
    return path


def read_state(directory: Path) -> dict[str, Any]:
    """Reads ``state.json`` of a fetched checkpoint directory."""
    return json.loads((Path(directory) / STATE_FILE).read_bytes())


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """One committed checkpoint of a series.

    Attributes:
        epoch: Completed epochs.
        key: Its prefix, ``<prefix>/checkpoints/epoch-NNNN``.
        marker: Its ``_SUCCESS`` marker (sha256 of every object).
    """

    epoch: int
    key: str
    marker: Marker


class CheckpointSeries:
    """The checkpoints one training run commits under an output prefix, and the ones it may resume from.

    Args:
        store: The store.
        prefix: The output prefix (``runs/<run_id>/gan/<CLASS>``, ``runs/.../seed-<seed>``).
        inputs_for: The marker inputs of the checkpoint of an epoch.
        producer: Producer written into the markers.
        keep: Committed checkpoints kept at or below the newest one written.
    """

    def __init__(
        self,
        store: Store,
        prefix: str,
        *,
        inputs_for: Callable[[int], Mapping[str, Any]],
        producer: str,
        keep: int = CHECKPOINTS_KEPT,
    ) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1. Received: keep={keep}")
        self.store = store
        self.prefix = prefix
        self.inputs_for = inputs_for
        self.producer = producer
        self.keep = keep

    def key(self, epoch: int) -> str:
        """The prefix of the checkpoint of ``epoch``."""
        return checkpoint_key(self.prefix, epoch)

    def folders(self) -> list[tuple[int, str]]:
        """``(epoch, key)`` of every checkpoint folder under the prefix (committed or not), oldest first."""
        found = []
        for key in self.store.list_prefixes(join_key(self.prefix, CHECKPOINTS_DIR)):
            match = CHECKPOINT_NAME_PATTERN.match(key.rsplit("/", 1)[-1])
            if match:
                found.append((int(match.group(1)), key))
        return sorted(found)

    def _split(self) -> tuple[list[Checkpoint], list[str]]:
        """``(committed checkpoints of this series oldest first, keys of every other folder)``."""
        ours, others = [], []
        for epoch, key in self.folders():
            marker = self.store.read_marker(key)
            if marker is not None and marker.inputs_hash == hash_inputs(self.inputs_for(epoch)):
                ours.append(Checkpoint(epoch=epoch, key=key, marker=marker))
            else:
                others.append(key)
        return ours, others

    def resume_candidates(self, max_epoch: int) -> list[Checkpoint]:
        """Committed checkpoints of the series with at most ``max_epoch`` epochs, newest first."""
        ours, _ = self._split()
        return [checkpoint for checkpoint in reversed(ours) if checkpoint.epoch <= max_epoch]

    def commit(self, epoch: int, local_dir: Path, *, saved: Mapping[str, SavedFile] | None = None) -> tuple[str, int]:
        """Commits every file under ``local_dir`` as the checkpoint of ``epoch``, then prunes (module docstring).

        Args:
            epoch: Completed epochs.
            local_dir: The staged checkpoint (files and sub-folders, names relative to it).
            saved: Model files of ``local_dir`` by name, whose staged sha256 must be the one taken at save time.

        Returns:
            ``(key of the checkpoint, number of checkpoint folders pruned)``.
        """
        key = self.key(epoch)
        with self.store.commit(key, inputs=self.inputs_for(epoch), producer=self.producer) as transaction:
            transaction.put_dir(local_dir)
            check_recorded(transaction, saved or {})
        return key, self.prune(newest=epoch)

    def prune(self, *, newest: int) -> int:
        """Applies the pruning rule after a commit of epoch ``newest``; returns how many folders it deleted."""
        ours, others = self._split()
        at_or_below = [checkpoint.key for checkpoint in ours if checkpoint.epoch <= newest]
        doomed = at_or_below[: -self.keep] + others
        for key in doomed:
            self.store.delete(join_key(key, MARKER_NAME))  # hide it first
            self.store.delete_prefix(key)
        return len(doomed)
