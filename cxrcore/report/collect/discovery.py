"""Phase 1 of collecting a run: list ``runs/<run_id>/`` and read ``_SUCCESS`` markers, nothing else.

An up-to-date report costs only this listing and a few marker reads (docs/architecture.md, "Commit protocol").
"""

from __future__ import annotations

from cxrcore.layout import (
    ClassifierOutput,
    classifiers_root,
    external_root,
    gan_prefix,
    parse_classifier_prefix,
    parse_external_prefix,
    run_prefix,
    synthetic_prefix,
)
from cxrcore.report.collect.records import ClassifierKey, ExternalKey, Incomplete, Inventory
from cxrcore.storage import MARKER_NAME, TMP_DIR, Marker, Store, StoreError, TransientStoreError, join_key
from cxrcore.vocab import CLASS_NAMES

__all__ = ["describe_run_root", "discover"]


def discover(store: Store, run_id: str) -> Inventory:
    """Lists a run's outputs and reads their markers (no other object is read).

    Args:
        store: The store holding ``runs/<run_id>/``.
        run_id: The run id.

    Returns:
        The :class:`Inventory`.
    """
    inventory = Inventory(run_id=run_id)
    root = classifiers_root(run_id)
    outputs: dict[str, ClassifierOutput] = {}
    committed: set[str] = set()
    unexpected: set[str] = set()
    for obj in store.list(root):
        parts = obj.key[len(root) + 1 :].split("/")
        if len(parts) < 4:
            unexpected.add(join_key(root, *parts[:-1]) if len(parts) > 1 else obj.key)
            continue
        prefix = join_key(root, *parts[:3])
        try:
            outputs[prefix] = parse_classifier_prefix(prefix)
        except ValueError:
            unexpected.add(prefix)
            continue
        if parts[3:] == [MARKER_NAME]:
            committed.add(prefix)
    for prefix in sorted(unexpected):
        inventory.incomplete.append(
            Incomplete(
                "classifier",
                prefix,
                "unexpected layout: expected classifiers/<baseline|augmented>/<model>/seed-<n>/",
            )
        )
    for prefix, output in sorted(outputs.items()):
        has_marker = prefix in committed
        key = ClassifierKey(output.condition, output.model, output.seed)
        marker = _read_marker(store, prefix, inventory, "classifier") if has_marker else None
        if marker is not None:
            inventory.classifiers[key] = (prefix, marker)
        elif not has_marker:
            inventory.incomplete.append(Incomplete("classifier", prefix, _uncommitted_reason(store, prefix)))
    for class_name in CLASS_NAMES:
        for kind, prefix, found in (
            ("gan", gan_prefix(run_id, class_name), inventory.gans),
            ("synthetic", synthetic_prefix(run_id, class_name), inventory.synthetic),
        ):
            marker = _read_marker(store, prefix, inventory, kind)
            if marker is not None:
                found[class_name] = (prefix, marker)
            elif _has_objects(store, prefix):
                inventory.incomplete.append(Incomplete(kind, prefix, _uncommitted_reason(store, prefix)))
    _discover_external(store, run_id, inventory)
    return inventory


def _discover_external(store: Store, run_id: str, inventory: Inventory) -> None:
    """Adds the committed external-test outputs (``cxr external-test``) to the inventory; none is no error."""
    for obj in store.list(external_root(run_id)):
        prefix, _, name = obj.key.rpartition("/")
        if name != MARKER_NAME:
            continue
        try:
            output = parse_external_prefix(prefix)
        except ValueError:
            continue  # staging or a foreign key: external outputs are optional, never a broken report
        classifier = output.classifier
        key = ExternalKey(output.dataset, ClassifierKey(classifier.condition, classifier.model, classifier.seed))
        marker = _read_marker(store, output.prefix, inventory, "external")
        if marker is not None:
            inventory.external[key] = (output.prefix, marker)


def _read_marker(store: Store, prefix: str, inventory: Inventory, kind: str) -> Marker | None:
    try:
        return store.read_marker(prefix)
    except TransientStoreError:
        raise  # an outage is not a broken marker: exit 75, Argo retries
    except StoreError as exc:
        inventory.incomplete.append(Incomplete(kind, prefix, f"unreadable {MARKER_NAME} marker: {exc}"))
        return None


def _has_objects(store: Store, prefix: str) -> bool:
    return any(True for _ in store.list(prefix))


def _uncommitted_reason(store: Store, prefix: str) -> str:
    keys = [obj.key[len(prefix) + 1 :] for obj in store.list(prefix)]
    staged = any(key.startswith(TMP_DIR + "/") for key in keys)
    checkpoints = any(key.startswith("checkpoints/") for key in keys)
    details = []
    if staged:
        details.append("a write is staged (job running, or it failed mid-commit)")
    if checkpoints:
        details.append("checkpoints exist (training started)")
    suffix = f": {'; '.join(details)}" if details else ""
    return f"no {MARKER_NAME} marker (job not finished){suffix}"


def describe_run_root(store: Store, run_id: str) -> str:
    """``<store uri>/runs/<run_id>``, for error messages."""
    return store.url(run_prefix(run_id))
