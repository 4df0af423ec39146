"""Latest-frame-only scheduling of inference: at most one pending frame, never a backlog.

Rules (all decided in :class:`LatestFrameScheduler`, a clock-injected state machine that tests
drive without threads; the policy node's worker thread runs it, ``nodes.input_thread``, and the
lock-step bag replay drives it on the bag's clock):

* a frame arriving while the worker is busy becomes *the* pending frame, replacing (and counting
  as dropped) any frame that was pending: when inference finishes, the freshest frame runs next;
* a frame arriving while the worker is idle starts at once if the rate budget allows, otherwise it
  is dropped at arrival (``dropped_rate``). Holding it until the budget allows would add that wait
  to every output's latency; the next camera frame comes soon enough and is fresher;
* the rate budget is a token bucket refilled at ``max_rate_hz`` with capacity 1. A frame may start
  when the bucket holds at least ``1 - slack`` tokens (the bucket may go ``slack`` into debt), so
  camera jitter does not cost whole frames while the long-run rate stays <= ``max_rate_hz``.

Times are ``time.monotonic()`` seconds: the cap protects the CPU/GPU, so it runs on wall time
even under ``use_sim_time``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


class RateBudget:
    """Token bucket: capacity 1 token, refilled at ``rate_hz``, may go ``slack`` tokens into debt."""

    def __init__(self, rate_hz: float, slack: float = 0.25, now: float = 0.0) -> None:
        _check(rate_hz, slack)
        self.rate_hz = rate_hz
        self.slack = slack
        self._tokens = 1.0  # a first frame starts at once
        self._t = now

    def set_rate(self, rate_hz: float, slack: float, now: float) -> None:
        """Change the rate from ``now`` on (tokens earned so far are kept)."""
        _check(rate_hz, slack)
        self._refill(now)
        self.rate_hz = rate_hz
        self.slack = slack

    def _refill(self, now: float) -> None:
        if now > self._t:
            self._tokens = min(1.0, self._tokens + (now - self._t) * self.rate_hz)
            self._t = now

    def tokens(self, now: float) -> float:
        self._refill(now)
        return self._tokens

    def can_start(self, now: float) -> bool:
        return self.tokens(now) >= 1.0 - self.slack - 1e-9

    def wait_time(self, now: float) -> float:
        """Seconds until :meth:`can_start` becomes true (0 if it is)."""
        missing = (1.0 - self.slack) - self.tokens(now)
        return max(0.0, missing / self.rate_hz)

    def consume(self, now: float) -> None:
        self._refill(now)
        self._tokens -= 1.0


def _check(rate_hz: float, slack: float) -> None:
    if not rate_hz > 0.0 or not 0.0 <= slack < 1.0:
        raise ValueError(f"need rate_hz > 0 and 0 <= slack < 1, got {rate_hz}, {slack}")


@dataclass
class SchedulerCounts:
    """Frame accounting; ``received == started + dropped_busy + dropped_rate + pending``."""

    received: int = 0
    started: int = 0
    dropped_busy: int = 0   # replaced while waiting for a busy worker
    dropped_rate: int = 0   # arrived while idle but over the rate budget

    @property
    def dropped(self) -> int:
        return self.dropped_busy + self.dropped_rate


class LatestFrameScheduler(Generic[T]):
    """Decides which frame runs when (no threads, no clock of its own: pass ``now``)."""

    def __init__(self, max_rate_hz: float, slack: float = 0.25, now: float = 0.0) -> None:
        self.budget = RateBudget(max_rate_hz, slack, now)
        self.counts = SchedulerCounts()
        self.pending: T | None = None
        self.busy = False

    def offer(self, frame: T, now: float) -> bool:
        """A frame arrived. Returns True if it is now pending (it may start), False if dropped."""
        self.counts.received += 1
        if self.busy or self.pending is not None:
            if self.pending is not None:
                self.counts.dropped_busy += 1
            self.pending = frame
            return True
        if self.budget.can_start(now):
            self.pending = frame
            return True
        self.counts.dropped_rate += 1
        return False

    def next_item(self, now: float) -> tuple[T | None, float]:
        """``(frame, 0)`` if a frame starts now (worker becomes busy), else ``(None, wait_s)``.

        ``wait_s`` is how long until the pending frame may start (inf when nothing is pending).
        """
        if self.busy or self.pending is None:
            return None, float("inf")
        wait = self.budget.wait_time(now)
        if wait > 0.0:
            return None, wait
        frame, self.pending = self.pending, None
        self.budget.consume(now)
        self.busy = True
        self.counts.started += 1
        return frame, 0.0

    def done(self, result: object = None) -> None:
        """The worker is done with the frame it took (``result`` is unused: frames always count)."""
        self.busy = False
