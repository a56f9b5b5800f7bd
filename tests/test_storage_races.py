"""Concurrent writers of one prefix, killed writers' leftovers, and markers that do not match their objects.

Writers are threads, each with its own :class:`~cxrcore.storage.Store` (its own boto3 client on S3), as
separate pods would have; they race on ``file://`` and on the moto S3 server. Every round must end with
exactly one writer having published, the other having adopted its output or stopped with a clear error, and a
``_SUCCESS`` marker whose every object matches its sha256.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cxrcore.storage import (
    MARKER_NAME,
    TMP_DIR,
    CommitBusyError,
    CommitConflictError,
    FileStore,
    NotCommittedError,
    S3Store,
    Store,
    TransientStoreError,
    hash_inputs,
    open_store,
    sha256_bytes,
)
from cxrcore.storage.leases import CLAIMS_DIR, PUBLISH_DIR, Lease, lease_key

pytestmark = pytest.mark.timeout(240)

#: Rounds of each race; each round is two writers on a fresh prefix.
RACE_ROUNDS = {"file": 25, "s3": 15}
#: Seconds a whole race test may take before it stops starting rounds (the assertions still cover every round run).
RACE_BUDGET_S = 60.0
#: Seconds a racing thread may take.
THREAD_TIMEOUT_S = 60.0


def twin(store: Store) -> Store:
    """Another store on the same root (an independent client), as another pod would open it."""
    if isinstance(store, S3Store):
        return S3Store(store.uri, endpoint_url=store.endpoint_url, addressing_style="path")
    assert isinstance(store, FileStore)
    return open_store(store.uri)


def backend(store: Store) -> str:
    """``"s3"`` or ``"file"``."""
    return "s3" if isinstance(store, S3Store) else "file"


def assert_marker_matches_objects(store: Store, prefix: str) -> None:
    """The marker exists, lists exactly the objects under ``prefix`` (no staging left), and every sha256 holds."""
    marker = store.require_committed(prefix)
    listed = {obj.key[len(prefix) + 1 :] for obj in store.list(prefix)}
    assert listed == {MARKER_NAME, *marker.outputs}, listed
    for relative, recorded in marker.outputs.items():
        store.get_bytes(f"{prefix}/{relative}", sha256=recorded["sha256"])


def race(writers: list[Callable[[], object]]) -> list[object]:
    """Runs the writers in threads at once; returns each one's result or exception."""
    results: list[object] = [None] * len(writers)

    def run(index: int) -> None:
        try:
            results[index] = writers[index]()
        except Exception as exc:  # noqa: BLE001  (the test inspects it)
            results[index] = exc

    threads = [threading.Thread(target=run, args=(index,), daemon=True) for index in range(len(writers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(THREAD_TIMEOUT_S)
        assert not thread.is_alive(), "a racing writer hung"
    return results


def racing_writer(store: Store, prefix: str, inputs: dict, content: bytes, barrier: threading.Barrier):
    """A writer that stages ``content`` and waits for its rival before publishing (the widest race)."""

    def write():
        with store.commit(prefix, inputs=inputs, producer="race") as transaction:
            transaction.put_bytes("images.bin", content)
            transaction.put_json("info.json", {"size": len(content)})
            barrier.wait(timeout=THREAD_TIMEOUT_S)
        return transaction

    return write


# ---------------------------------------------------------------------------------------------- races
def test_identical_writers_racing_one_prefix_leave_one_winner_and_a_true_marker(store: Store) -> None:
    """Two imports of the same images under one name: one publishes, the other adopts; never a lying marker."""
    stores = [store, twin(store)]
    started = time.monotonic()
    rounds = 0
    for round_index in range(RACE_ROUNDS[backend(store)]):
        if time.monotonic() - started > RACE_BUDGET_S:
            break
        prefix = f"datasets/demo/v{round_index}"
        inputs = {"source": "same-images", "round": round_index}
        barrier = threading.Barrier(2)
        contents = [os.urandom(1000 + 17 * writer) for writer in range(2)]  # same inputs, different bytes
        results = race([racing_writer(stores[w], prefix, inputs, contents[w], barrier) for w in range(2)])

        assert not [r for r in results if isinstance(r, Exception)], results
        assert_marker_matches_objects(store, prefix)
        published = [r for r in results if not r.adopted]
        assert len(published) == 1, f"round {round_index}: {len(published)} writers published"
        assert results[0].marker == results[1].marker
        winner = results.index(published[0])
        assert store.get_bytes(f"{prefix}/images.bin") == contents[winner]
        assert store.is_committed(prefix, inputs)
        rounds += 1
    assert rounds >= 5


def test_writers_with_different_inputs_racing_one_prefix_never_mix_outputs(store: Store) -> None:
    """Two jobs with different settings on one output: each round ends with one writer's complete output."""
    stores = [store, twin(store)]
    started = time.monotonic()
    conflicts = 0
    for round_index in range(RACE_ROUNDS[backend(store)]):
        if time.monotonic() - started > RACE_BUDGET_S:
            break
        prefix = f"runs/r{round_index}/report"
        barrier = threading.Barrier(2)
        contents = [os.urandom(2000 + 31 * writer) for writer in range(2)]
        writers = [racing_writer(stores[w], prefix, {"writer": w}, contents[w], barrier) for w in range(2)]
        results = race(writers)

        errors = [r for r in results if isinstance(r, Exception)]
        assert all(isinstance(error, CommitConflictError) and prefix in str(error) for error in errors), errors
        assert len(errors) <= 1
        conflicts += len(errors)
        assert_marker_matches_objects(store, prefix)
        marker = store.require_committed(prefix)
        owner = next(w for w in range(2) if hash_inputs({"writer": w}) == marker.inputs_hash)
        assert store.get_bytes(f"{prefix}/images.bin") == contents[owner]
        assert not isinstance(results[owner], Exception)


def test_a_live_rival_publish_decides_by_inputs(store: Store) -> None:
    """A live publish lease of another writer: different inputs stop with exit 1, identical ones wait (75)."""
    store.publish_wait_s = 0.5
    rival = Lease("20990101T000000-rival", hash_inputs({"v": 1}), time.time(), 300.0)
    store.put_bytes(lease_key("out", PUBLISH_DIR, rival.txid), rival.to_json())

    with pytest.raises(CommitConflictError, match="out") as conflict:
        with store.commit("out", inputs={"v": 2}) as transaction:
            transaction.put_bytes("a.txt", b"2")
    assert not isinstance(conflict.value, TransientStoreError)
    with pytest.raises(CommitBusyError, match="out") as busy:
        with store.commit("out", inputs={"v": 1}) as transaction:
            transaction.put_bytes("a.txt", b"1")
    assert isinstance(busy.value, TransientStoreError)
    assert store.read_marker("out") is None


def test_a_killed_publishers_expired_lease_does_not_block_and_is_collected(store: Store) -> None:
    dead = Lease("20200101T000000-dead", hash_inputs({"v": 2}), time.time() - 7200, 300.0)
    store.put_bytes(lease_key("out", PUBLISH_DIR, dead.txid), dead.to_json())

    with store.commit("out", inputs={"v": 1}) as transaction:
        transaction.put_bytes("a.txt", b"1")

    assert not transaction.adopted
    assert_marker_matches_objects(store, "out")


# ---------------------------------------------------------------------------------------------- verification
def test_a_marker_whose_objects_are_missing_or_resized_is_not_committed(store: Store) -> None:
    inputs = {"v": 1}
    with store.commit("out", inputs=inputs) as transaction:
        transaction.put_bytes("a.txt", b"aaaa")
        transaction.put_bytes("b.txt", b"bbbb")
    store.put_bytes("out/a.txt", b"a different, longer content")
    store.delete("out/b.txt")

    assert store.read_marker("out") is not None
    assert not store.is_committed("out")
    assert not store.is_committed("out", inputs)
    with pytest.raises(NotCommittedError, match=r"a\.txt has 27 bytes.*b\.txt is missing"):
        store.require_committed("out")

    # The re-run is not "unchanged": it publishes again and repairs the output.
    with store.commit("out", inputs=inputs) as transaction:
        transaction.put_bytes("a.txt", b"aaaa")
        transaction.put_bytes("b.txt", b"bbbb")
    assert not transaction.adopted
    assert store.is_committed("out", inputs)
    assert_marker_matches_objects(store, "out")


def test_an_identical_committed_output_is_adopted_not_rewritten(store: Store) -> None:
    with store.commit("out", inputs={"v": 1}) as first:
        first.put_bytes("a.txt", b"first")
    with store.commit("out", inputs={"v": 1}) as second:
        second.put_bytes("a.txt", b"second run, other bytes")

    assert second.adopted and second.marker == first.marker
    assert store.get_bytes("out/a.txt") == b"first"
    assert_marker_matches_objects(store, "out")


# ---------------------------------------------------------------------------------------------- garbage
def plant_dead_writer(store: Store, prefix: str, txid: str, *, heartbeat_age_s: float) -> list[str]:
    """Leaves what a writer killed mid-staging leaves: a claim with an old heartbeat and staged objects."""
    claim = Lease(txid, hash_inputs({"dead": True}), time.time() - heartbeat_age_s, 300.0)
    store.put_bytes(lease_key(prefix, CLAIMS_DIR, txid), claim.to_json())
    keys = [f"{prefix}/{TMP_DIR}/{txid}/shards/{n}.npy" for n in range(3)]
    for key in keys:
        store.put_bytes(key, b"half an import")
    return [lease_key(prefix, CLAIMS_DIR, txid), *keys]


def test_the_next_commit_collects_a_killed_writers_staging_but_not_a_live_ones(store: Store) -> None:
    dead_keys = plant_dead_writer(store, "out", "20200101T000000-dead", heartbeat_age_s=2 * 3600)
    live_store = twin(store)
    live = live_store.commit("out", inputs={"live": True})
    with live:
        live.put_bytes("a.txt", b"live")
        live_keys = [obj.key for obj in store.list(f"out/{TMP_DIR}/{live.txid}")]
        with store.commit("out", inputs={"next": True}) as transaction:
            transaction.put_bytes("a.txt", b"next")

        remaining = {obj.key for obj in store.list("out")}
        assert not remaining & set(dead_keys)
        assert set(live_keys) <= remaining and live_keys
        assert lease_key("out", CLAIMS_DIR, live.txid) in remaining
    # The live writer publishes after the other one finished: a plain re-commit, complete and consistent.
    assert not live.adopted
    assert_marker_matches_objects(store, "out")
    assert store.get_bytes("out/a.txt") == b"live"


def test_collect_garbage_honours_the_age_threshold(store: Store) -> None:
    dead_keys = plant_dead_writer(store, "out", "20200101T000000-dead", heartbeat_age_s=1800)

    assert store.collect_garbage("out") == 0  # 30 min: younger than the default hour
    assert store.collect_garbage("out", older_than=600) == len(dead_keys)
    assert store.list("out") == []


def test_a_heartbeat_keeps_a_long_transaction_live(store: Store) -> None:
    store.lease_ttl_s, store.heartbeat_interval_s = 1.0, 0.2
    collector = twin(store)
    collector.lease_ttl_s = 1.0
    with store.commit("out", inputs={"v": 1}) as transaction:
        transaction.put_bytes("a.txt", b"1")
        time.sleep(2.5)  # longer than the time to live: only heartbeats keep the claim live
        assert collector.clean_staging("out") == 0
        assert store.exists(f"out/{TMP_DIR}/{transaction.txid}/a.txt")
    assert_marker_matches_objects(store, "out")


def test_file_store_collects_old_temp_files_of_killed_writers(tmp_path: Path) -> None:
    store = open_store((tmp_path / "store").as_uri())
    old_part = tmp_path / "store" / "out" / ".a.txt.0123abcd.part"
    fresh_part = tmp_path / "store" / "out" / "sub" / ".b.txt.4567ef01.part"
    for path in (old_part, fresh_part):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"torn write")
    two_hours_ago = time.time() - 7200
    os.utime(old_part, (two_hours_ago, two_hours_ago))
    legacy = tmp_path / "store" / "out" / TMP_DIR / "20200101T000000-legacy" / "x.bin"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"staged before claims existed")
    os.utime(legacy, (two_hours_ago, two_hours_ago))

    with store.commit("out", inputs={}) as transaction:
        transaction.put_bytes("a.txt", b"1")

    assert not old_part.exists() and not legacy.exists()
    assert fresh_part.exists()  # may belong to a writer in flight
    assert sha256_bytes(store.get_bytes("out/a.txt")) == store.require_committed("out").outputs["a.txt"]["sha256"]
