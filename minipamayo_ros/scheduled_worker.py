"""One worker thread for work chosen by a clock-injected schedule (ROS-free).

The policy's latest-frame scheduler and the text node's one-slot drop policy decide *what* runs
*when* as plain state machines that tests drive without threads. :class:`ScheduledWorker` is the
one thread loop around either: callers (ROS callbacks) change the schedule under a lock held for
microseconds and never wait for the work; the worker takes the next item, runs it outside the
lock, and reports the result back to the schedule. An exception from the work goes to
``on_error`` (result ``None``) and the worker carries on: one bad input or a transient backend
error must not stop a node.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")
V = TypeVar("V")
T_co = TypeVar("T_co", covariant=True)
R_contra = TypeVar("R_contra", contravariant=True)


class Schedule(Protocol[T_co, R_contra]):
    """What a :class:`ScheduledWorker` runs; called with the worker's lock held."""

    def next_item(self, now: float) -> tuple[T_co | None, float]:
        """``(item, 0)``: run ``item`` now (the schedule counts it as running); ``(None, wait_s)``:
        nothing yet, ask again after ``wait_s`` [s] or when woken (``inf``: only when woken)."""
        ...

    def done(self, result: R_contra | None) -> None:
        """The running item finished with ``result`` (``None``: it raised)."""
        ...


class ScheduledWorker(Generic[T, R]):
    """Runs ``process(item)`` on a dedicated daemon thread for the items ``schedule`` hands out.

    ``clock`` gives the ``now`` [s] the schedule decides on: ``time.monotonic`` in the nodes (their
    rate caps protect the CPU/GPU; a schedule that also ages requests reads the ROS clock itself).
    """

    def __init__(self, process: Callable[[T], R], schedule: Schedule[T, R], clock: Callable[[], float],
                 on_error: Callable[[BaseException], None] | None = None, name: str = "worker",
                 on_start: Callable[[], None] | None = None) -> None:
        self._process = process
        self._on_start = on_start  # runs first on the worker thread (e.g. its scheduling priority)
        self._schedule = schedule
        self._clock = clock
        self._on_error = on_error
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> ScheduledWorker[T, R]:
        self._thread.start()
        return self

    def locked(self, change: Callable[[], V]) -> V:
        """Run ``change()`` (reads or changes the schedule) under the lock, then wake the worker."""
        with self._cond:
            value = change()
            self._cond.notify()
            return value

    def now(self) -> float:
        return self._clock()

    def close(self, timeout: float = 5.0) -> bool:
        """Stop taking items and wait up to ``timeout`` [s] for the item running, if any, to return.

        Returns True once the thread has ended, False if an item is still running: then whatever
        ``process`` uses (an inference backend) must not be freed, the call is still inside it.
        """
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.ident is None:
            return True  # never started
        if threading.current_thread() is self._thread:
            return False  # closed from inside process(): that item is still running
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        if self._on_start is not None:
            self._on_start()
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    item, wait = self._schedule.next_item(self._clock())
                    if item is not None:
                        break
                    self._cond.wait(None if wait == float("inf") else max(wait, 1e-4))
            result: R | None = None
            try:
                result = self._process(item)
            except Exception as exc:  # the worker must survive a bad item / transient backend error
                if self._on_error is not None:
                    self._on_error(exc)
            finally:
                with self._cond:
                    self._schedule.done(result)
