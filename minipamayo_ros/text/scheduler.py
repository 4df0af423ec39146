"""The text node's drop policy: one slot, latest wins; explanations are always droppable.

:class:`ExplanationSlot` is a clock-injected state machine (tests drive it without threads):

* :meth:`offer`: a new request (event or user request) takes *the* slot; one already waiting is
  replaced (``replaced``). Requests arriving while a generation runs are thereby coalesced: at most
  one waits, and it is the newest;
* :meth:`take`: the worker asks for work. A waiting request older than ``max_event_age`` (its
  stamp -> now on the **ROS clock**, the clock stamps are on) is dropped instead of started
  (``dropped_stale``): explaining a situation that has passed helps nobody, and would delay the
  explanation of the current one. No generation starts within ``min_period`` of the previous start
  (``1 / max_rate_hz``) on the **steady clock**: the request waits (and may still be replaced or
  go stale). That bounds the text node's duty cycle: even at SCHED_IDLE, a text process using
  every idle cycle slows the policy through caches, memory and DDS (``docs/text.md``, measured);
  on the steady clock the bound holds under ``use_sim_time`` at any real-time factor;
* :meth:`finished`: the worker reports ``generated``, ``abandoned`` (over ``max_generation_ms``,
  see ``generator``), ``failed``, or ``no_context`` (no context vector for the trajectory: counted
  as ``failed`` and as ``no_context``, in one step, so no reader ever sees one without the other).

Accounting (checked by the tests): ``requested == replaced + dropped_stale + started + waiting``,
``started == generated + abandoned + failed + running`` and ``no_context <= failed``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Generic, TypeVar

from minipamayo_ros.events import Event
from minipamayo_ros.scheduled_worker import ScheduledWorker


@dataclass(frozen=True)
class ExplanationRequest:
    """What to explain: the trajectory (stamp, sequence) and why."""

    kind: Event            # event kind, or Event.REQUESTED
    stamp: float           # [s] stamp of the explained trajectory (= its image stamp)
    sequence: int          # Trajectory.sequence of the explained trajectory
    situation: Event       # what the vehicle is doing there (conditions the caption)


@dataclass
class SlotCounts:
    requested: int = 0
    replaced: int = 0
    dropped_stale: int = 0
    started: int = 0
    generated: int = 0
    abandoned: int = 0
    failed: int = 0
    no_context: int = 0     # of ``failed``: no context vector for the explained trajectory

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


R = TypeVar("R")


class ExplanationSlot(Generic[R]):
    """One pending request at most (see module docstring). ``stamp_of(request)`` gives its stamp [s]
    on the ROS clock; ``ros_clock()`` reads that clock [s] when the worker asks (None: the steady
    ``now`` passed to :meth:`take` serves for both, as in tests)."""

    OUTCOMES = ("generated", "abandoned", "failed", "no_context")

    def __init__(self, max_event_age: float, stamp_of: Callable[[R], float], min_period: float = 0.0,
                 ros_clock: Callable[[], float] | None = None) -> None:
        if not max_event_age > 0.0:
            raise ValueError(f"max_event_age must be > 0 s, got {max_event_age}")
        if not min_period >= 0.0:
            raise ValueError(f"min_period must be >= 0 s, got {min_period}")
        self.max_event_age = max_event_age
        self.min_period = min_period   # [s] between two generation starts (0 = back-to-back)
        self._last_start = -float("inf")  # [s] steady clock
        self._stamp_of = stamp_of
        self._ros_clock = ros_clock
        self.counts = SlotCounts()
        self.pending: R | None = None
        self.running = False

    def offer(self, request: R) -> bool:
        """Put ``request`` in the slot. Returns True if it replaced a waiting request."""
        self.counts.requested += 1
        replaced = self.pending is not None
        if replaced:
            self.counts.replaced += 1
        self.pending = request
        return replaced

    def take(self, now: float, ros_now: float | None = None) -> R | None:
        """The request to generate now (the worker is then running), or None.

        ``now``: the steady clock [s] (the rate limit); ``ros_now``: the ROS clock [s] (the request's
        age; default ``now``). A waiting request older than ``max_event_age`` is dropped (counted).
        """
        if self.running or self.pending is None or now < self.next_start(now):
            return None
        request, self.pending = self.pending, None
        if (now if ros_now is None else ros_now) - self._stamp_of(request) > self.max_event_age:
            self.counts.dropped_stale += 1
            return None
        self.running = True
        self.counts.started += 1
        self._last_start = now
        return request

    def next_start(self, now: float) -> float:
        """Earliest steady-clock time [s] the next generation may start (``now`` when the rate allows it)."""
        return max(now, self._last_start + self.min_period)

    def finished(self, outcome: str) -> None:
        """The running generation ended with ``outcome`` (one of :attr:`OUTCOMES`)."""
        if outcome not in self.OUTCOMES:
            raise ValueError(f"outcome must be one of {self.OUTCOMES}, got {outcome!r}")
        if not self.running:
            raise RuntimeError("finished() without a running generation")
        self.running = False
        if outcome == "no_context":  # a failure with a known cause: both counters, in one step
            self.counts.failed += 1
        setattr(self.counts, outcome, getattr(self.counts, outcome) + 1)

    # --- the Schedule protocol, for ScheduledWorker ----------------------------------------
    def next_item(self, now: float) -> tuple[R | None, float]:
        """:meth:`take` for the worker (``now``: steady clock): ``(request, 0)``, or ``(None, wait_s)``."""
        request = self.take(now, self._ros_clock() if self._ros_clock is not None else None)
        if request is not None:
            return request, 0.0
        if self.pending is None or self.running:
            return None, float("inf")  # woken by offer() / asked again after done()
        return None, self.next_start(now) - now  # rate-limited

    def done(self, result: str | None) -> None:
        """:meth:`finished`; an exception (``None``) or an unknown outcome counts as ``failed``."""
        self.finished(result if result in self.OUTCOMES else "failed")

    @property
    def waiting(self) -> int:
        return int(self.pending is not None)


class ExplanationWorker(Generic[R]):
    """Runs ``process(request) -> outcome`` on its own thread (:class:`ScheduledWorker`) for
    requests the slot hands out.

    :meth:`offer` (called from ROS callbacks) holds a lock for microseconds and never waits for a
    generation. ``now()`` is the steady clock the rate limit runs on (``time.monotonic`` in the
    node; request ages: the slot's ``ros_clock``); an exception from ``process`` counts as
    ``failed`` and goes to ``on_error``; the worker carries on.
    """

    def __init__(self, process: Callable[[R], str], slot: ExplanationSlot[R], now: Callable[[], float],
                 on_error: Callable[[BaseException], None] | None = None, name: str = "text-worker",
                 on_start: Callable[[], None] | None = None) -> None:
        self._slot = slot
        self._worker: ScheduledWorker[R, str] = ScheduledWorker(process, slot, now, on_error, name, on_start)

    def start(self) -> ExplanationWorker[R]:
        self._worker.start()
        return self

    def offer(self, request: R) -> bool:
        return self._worker.locked(lambda: self._slot.offer(request))

    def configure(self, max_event_age: float, min_period: float) -> None:
        """Runtime parameter change, applied under the worker's lock."""
        def change() -> None:
            self._slot.max_event_age = max_event_age
            self._slot.min_period = min_period
        self._worker.locked(change)

    def counts(self) -> tuple[SlotCounts, int, bool]:
        """(copy of the counts, requests waiting (0/1), generation running)."""
        return self._worker.locked(
            lambda: (SlotCounts(**self._slot.counts.as_dict()), self._slot.waiting, self._slot.running))

    def close(self, timeout: float = 5.0) -> bool:
        """False while a generation is still running after ``timeout`` [s] (see ScheduledWorker)."""
        return self._worker.close(timeout)
