"""The local runner's slot queue: priority among waiters, grants only once the runner settles, bounded waits."""

from __future__ import annotations

import threading
import time

import pytest

from cxrcore.ops.slots import SlotQueue


def _until(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def _waiter(queue: SlotQueue, priority: tuple, order: list, hold: float = 0.0) -> threading.Thread:
    def work() -> None:
        assert queue.acquire(priority, timeout=10)
        order.append(priority)
        time.sleep(hold)
        queue.release()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


@pytest.mark.timeout(30)
def test_waiters_are_served_by_priority_not_arrival():
    queue = SlotQueue(1, settle_seconds=10)
    assert queue.acquire((9,))
    order: list = []
    threads = []
    for count, priority in enumerate([(2,), (0, 5), (1,), (0, 5, 0)], start=1):
        threads.append(_waiter(queue, priority, order))
        _until(lambda count=count: queue.waiting == count)
    queue.release()
    for thread in threads:
        thread.join(10)
    assert order == [(0, 5), (0, 5, 0), (1,), (2,)]
    assert (queue.free, queue.waiting, queue.forced_grants) == (1, 0, 0)


@pytest.mark.timeout(30)
def test_a_slot_waits_for_the_runner_to_settle():
    """While a runner thread is active, a freed slot is kept for what it is about to submit."""
    queue = SlotQueue(1, settle_seconds=10)
    queue.enter()  # the runner's thread, active
    order: list = []
    queue.enter()  # each step thread counts from its submission, as LocalRunner's do
    late = _waiter(queue, (5,), order)
    _until(lambda: queue.waiting == 1)
    time.sleep(0.1)
    assert order == []  # a free slot and a waiter, but the runner is busy
    queue.enter()  # the runner submits a step declared earlier ...
    early = _waiter(queue, (1,), order)
    _until(lambda: queue.waiting == 2)
    queue.leave()  # ... and waits: settled
    early.join(10)
    assert order == [(1,)]
    queue.leave()  # the runner has seen the first step's result: settled again, the slot goes on
    late.join(10)
    assert order == [(1,), (5,)]
    assert (queue.active, queue.forced_grants) == (1, 0)  # the ended thread no parent has seen yet


@pytest.mark.timeout(30)
def test_an_unsettled_runner_delays_a_grant_but_never_keeps_the_slot():
    queue = SlotQueue(1, settle_seconds=0.2)
    queue.enter()  # a thread that never waits (an accounting slip)
    queue.enter()  # this one
    started = time.monotonic()
    assert queue.acquire((3,), timeout=10)
    waited = time.monotonic() - started
    queue.release()
    assert 0.15 <= waited < 5
    assert queue.forced_grants == 1


@pytest.mark.timeout(30)
def test_timeouts_and_thread_accounting():
    queue = SlotQueue(1, settle_seconds=10)
    queue.enter()
    assert queue.acquire((0,))  # settled once this thread waits
    assert not queue.acquire((0,), timeout=0.05)
    assert (queue.waiting, queue.active, queue.free) == (0, 1, 0)
    with queue.idle():
        assert queue.active == 0
    queue.release()
    queue.leave()
    assert (queue.active, queue.free) == (0, 1)


@pytest.mark.timeout(30)
def test_counted_futures_pass_their_count_to_the_waiting_parent():
    import concurrent.futures as cf

    queue = SlotQueue(1, settle_seconds=10)
    queue.enter()
    release = threading.Event()
    with cf.ThreadPoolExecutor(max_workers=3) as pool:
        futures = [queue.submit(pool, release.wait, 10) for _ in range(3)]
        assert queue.active == 4
        release.set()
        queue.wait_all(futures)
        assert queue.active == 1  # the children's counts were released, the parent's kept
        first, second = threading.Event(), threading.Event()
        one, two = queue.submit(pool, first.wait, 10), queue.submit(pool, second.wait, 10)
        assert queue.active == 3
        first.set()
        assert queue.wait_first([one, two]) == {one}
        assert queue.active == 2  # this thread and the one still running
        second.set()
        assert queue.wait_first([two]) == {two}
        assert queue.active == 1
    queue.leave()
    assert queue.active == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"capacity": 0}, "capacity must be an integer >= 1"),
        ({"capacity": True}, "capacity must be an integer >= 1"),
        ({"capacity": 1, "settle_seconds": -1.0}, "settle_seconds must be >= 0"),
    ],
)
def test_bad_arguments_are_named(arguments, message):
    with pytest.raises(ValueError, match=message):
        SlotQueue(**arguments)


def test_release_without_a_held_slot_is_an_error():
    with pytest.raises(ValueError, match="release\\(\\) without a held slot"):
        SlotQueue(2).release()


@pytest.mark.timeout(30)
def test_map_returns_results_in_order_and_raises_the_first_error():
    queue = SlotQueue(1, settle_seconds=10)
    queue.enter()
    assert queue.map(lambda value, delay: time.sleep(delay) or value * 2, [(1, 0.05), (2, 0.0), (3, 0.01)]) == [2, 4, 6]
    assert queue.active == 1

    def fail(value):
        raise RuntimeError(f"item {value}")

    with pytest.raises(RuntimeError, match="item 0"):
        queue.map(fail, [(0,), (1,)])
    assert queue.active == 1
