"""Pod capacity of a local run, handed out in a fixed order (docs/architecture.md "Deployment", slot order).

With fewer slots than ready steps, which step starts first changes a run's wall time, not its results: the
``demo`` profile took 9:28 when both GANs started first and 11:46 when a baseline classifier took a slot ahead
of one of them. A semaphore hands a freed slot to whichever waiting thread the OS wakes first; :class:`SlotQueue`
makes the choice reproducible:

* **Priority.** Each waiting step carries a priority, its position in the manifest (the task's index in each
  enclosing DAG or steps template, then its ``withItems``/``withParam`` index), compared as a tuple: among the
  steps waiting, the one declared first gets the slot.
* **Settled runner.** A step's completion can make steps ready that declare earlier than those already waiting
  (a GAN's ``synthesize`` against a waiting baseline classifier). Those must be waiting before the freed slot is
  handed on, so a slot is handed out only when no runner thread is between events: every thread of the runner is
  counted *active* from its creation, and is idle only while it waits (for a slot, for its step's process, for a
  retry's backoff, or for child threads). A thread that ends stays counted until the parent that waits for it has
  seen its result, so a completion is processed (its dependents submitted and waiting) before the next grant.
  ``settle_seconds`` bounds that wait: should the count ever be off, a slot is handed on late, never kept.

Argo's controller does not promise this order: it visits a DAG's leaf tasks in declaration order but each task's
dependencies in Go map order (``dagContext.resolveDependencies``), so on a cluster the order is capacity, not
contract. Used standalone (no runner accounting), the queue behaves as a semaphore that serves simultaneous waiters
by priority.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from cxrcore.logging import get_logger

log = get_logger("cxrcore.ops.slots")

#: How long a freed slot waits for the runner to settle before it is handed on anyway.
DEFAULT_SETTLE_SECONDS = 5.0


class SlotQueue:
    """``capacity`` slots, granted by priority once the runner's threads are all waiting.

    Args:
        capacity: Slots (steps running at once).
        settle_seconds: Longest wait for the runner to settle before a free slot goes to the best waiter anyway.

    Raises:
        ValueError: ``capacity`` below 1 or a negative ``settle_seconds``.
    """

    def __init__(self, capacity: int, *, settle_seconds: float = DEFAULT_SETTLE_SECONDS) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an integer >= 1. Received: capacity={capacity!r}")
        if not settle_seconds >= 0.0:
            raise ValueError(f"settle_seconds must be >= 0. Received: settle_seconds={settle_seconds!r}")
        self.capacity = capacity
        self.settle_seconds = float(settle_seconds)
        self._condition = threading.Condition()
        self._free = capacity
        self._active = 0
        self._waiting: list[tuple[tuple[int, ...], int]] = []
        self._granted: set[int] = set()
        self._tickets = itertools.count()
        self._stalled_since: float | None = None
        #: ``(priority, ticket)`` of every grant, in order (for logs and tests).
        self.grants: list[tuple[tuple[int, ...], int]] = []
        #: Grants made because the runner had not settled within ``settle_seconds``.
        self.forced_grants = 0

    # ------------------------------------------------------------------ activity
    @property
    def active(self) -> int:
        """Runner threads counted active (running, or ended and not yet seen by their parent)."""
        with self._condition:
            return self._active

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot."""
        with self._condition:
            return len(self._waiting)

    @property
    def free(self) -> int:
        """Slots not held by a step."""
        with self._condition:
            return self._free

    def enter(self, count: int = 1) -> None:
        """Counts ``count`` more active threads (a thread about to be started, or one that woke up)."""
        with self._condition:
            self._active += count

    def leave(self, count: int = 1) -> None:
        """Counts ``count`` fewer active threads (a thread about to wait, or results a parent has seen)."""
        if count <= 0:
            return
        with self._condition:
            self._active -= count
            self._dispatch()

    @contextlib.contextmanager
    def idle(self) -> Iterator[None]:
        """The calling thread waits on something outside the runner (a process, a backoff) inside the block."""
        self.leave()
        try:
            yield
        finally:
            self.enter()

    # ------------------------------------------------------------------ threads of the runner
    def submit(self, pool: cf.Executor, function: Callable[..., Any], /, *args: Any) -> cf.Future[Any]:
        """``pool.submit`` with the new thread counted active from now (before it is scheduled)."""
        self.enter()
        try:
            return pool.submit(function, *args)
        except BaseException:
            self.leave()
            raise

    def wait_first(self, futures: Iterable[cf.Future[Any]]) -> set[cf.Future[Any]]:
        """Waits, idle, until at least one of ``futures`` is done; takes over the finished threads' counts."""
        self.leave()
        finished, _ = cf.wait(list(futures), return_when=cf.FIRST_COMPLETED)
        self.leave(len(finished) - 1)  # the finished threads' counts pass to this one, which is awake again
        return finished

    def map(self, function: Callable[..., Any], arguments: Sequence[tuple[Any, ...]]) -> list[Any]:
        """``function(*args)`` for each of ``arguments``, each in its own counted thread; the results in order.

        The calling thread waits idle (:meth:`wait_all`); the first exception in ``arguments`` order is raised, as
        ``ThreadPoolExecutor.map`` would.
        """
        with cf.ThreadPoolExecutor(max_workers=max(1, len(arguments))) as pool:
            futures = [self.submit(pool, function, *args) for args in arguments]
            self.wait_all(futures)
            return [future.result() for future in futures]

    def wait_all(self, futures: Sequence[cf.Future[Any]]) -> None:
        """Waits, idle, until every one of ``futures`` is done, releasing each finished thread's count."""
        self.leave()
        pending = set(futures)
        while pending:
            finished, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            self.leave(len(finished) - (0 if pending else 1))

    # ------------------------------------------------------------------ slots
    def acquire(self, priority: Sequence[int] = (), timeout: float | None = None) -> bool:
        """Waits, idle, for a slot; ``False`` when ``timeout`` seconds pass first.

        Args:
            priority: Lower first (tuples compare element by element); ties go to the earlier caller.
            timeout: Seconds to wait at most; ``None`` waits as long as it takes.
        """
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        with self._condition:
            ticket = next(self._tickets)
            heapq.heappush(self._waiting, (tuple(int(p) for p in priority), ticket))
            self._active -= 1
            while True:
                self._dispatch()
                if ticket in self._granted:
                    self._granted.discard(ticket)
                    return True  # the grant counted this thread active again
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    self._waiting = [entry for entry in self._waiting if entry[1] != ticket]
                    heapq.heapify(self._waiting)
                    self._active += 1
                    return False
                waits = [] if deadline is None else [deadline - now]
                if self._stalled_since is not None:
                    waits.append(max(0.0, self._stalled_since + self.settle_seconds - now) + 0.001)
                self._condition.wait(min(waits) if waits else None)

    def release(self) -> None:
        """Frees one slot; it goes to the best waiter once the runner has settled."""
        with self._condition:
            if self._free >= self.capacity:
                raise ValueError(f"release() without a held slot. Received: free={self._free}, capacity={self.capacity}")
            self._free += 1
            self._dispatch()

    def _dispatch(self) -> None:
        """Grants free slots to the best waiters while the runner is settled (caller holds the lock)."""
        while self._free > 0 and self._waiting:
            now = time.monotonic()
            if self._active > 0:
                if self._stalled_since is None:
                    self._stalled_since = now
                    self._condition.notify_all()  # waiters re-arm their timeouts to the settle limit
                    return
                if now - self._stalled_since < self.settle_seconds:
                    return
                self.forced_grants += 1
                log.info("slot_granted_unsettled", active=self._active, waiting=len(self._waiting),
                            settle_seconds=self.settle_seconds)
            priority, ticket = heapq.heappop(self._waiting)
            self._free -= 1
            self._active += 1
            self._granted.add(ticket)
            self.grants.append((priority, ticket))
            self._stalled_since = None
            self._condition.notify_all()
        self._stalled_since = None
