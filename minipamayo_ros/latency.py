"""Latency statistics: percentiles over a sliding window (we judge p95/p99, never the mean)."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class LatencySummary:
    """Percentiles of a latency sample, in the unit it was recorded in (ms throughout this repo)."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float
    mean: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def summarize(samples: np.ndarray | list[float]) -> LatencySummary:
    """p50/p95/p99/max/mean of ``samples`` (NaN everywhere for an empty sample)."""
    a = np.asarray(samples, dtype=np.float64)
    if a.size == 0:
        nan = float("nan")
        return LatencySummary(0, nan, nan, nan, nan, nan)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return LatencySummary(int(a.size), float(p50), float(p95), float(p99), float(a.max()),
                          float(a.mean()))


class LatencyWindow:
    """The last ``size`` latency samples, summarised on demand (e.g. for 1 Hz diagnostics)."""

    def __init__(self, size: int = 200) -> None:
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        self._values: deque[float] = deque(maxlen=size)

    def add(self, value: float) -> None:
        self._values.append(float(value))

    def __len__(self) -> int:
        return len(self._values)

    def summary(self) -> LatencySummary:
        return summarize(np.fromiter(self._values, float, len(self._values)))


class LoopTiming:
    """Steady-clock timing of a periodic loop (e.g. the follower's control tick).

    A control loop's consumers need to know about missed deadlines whatever clock stamps its
    output: the interval between tick starts and the work per tick are recorded in ms on the
    caller's steady clock; a tick starting more than ``late_factor`` periods after the previous one
    is *late* (counted, and the longest gap is kept since start).
    """

    def __init__(self, period_s: float, window: int = 500, late_factor: float = 2.0) -> None:
        if not period_s > 0.0 or not late_factor > 1.0:
            raise ValueError(f"need period_s > 0 and late_factor > 1, got {period_s}, {late_factor}")
        self.period_s = period_s
        self.late_factor = late_factor
        self.intervals = LatencyWindow(window)  # [ms] start -> next start
        self.work = LatencyWindow(window)       # [ms] start -> finish
        self.ticks = 0
        self.late = 0
        self.longest_gap_ms = 0.0
        self._start: float | None = None

    def started(self, t: float) -> None:
        """A tick started at ``t`` [s, steady clock]."""
        if self._start is not None:
            gap_ms = (t - self._start) * 1e3
            self.intervals.add(gap_ms)
            self.longest_gap_ms = max(self.longest_gap_ms, gap_ms)
            if gap_ms > self.late_factor * self.period_s * 1e3:
                self.late += 1
        self._start = t
        self.ticks += 1

    def finished(self, t: float) -> None:
        """The tick that started last finished at ``t`` [s, steady clock]."""
        if self._start is not None:
            self.work.add((t - self._start) * 1e3)

    def as_values(self) -> dict[str, str]:
        """Diagnostics key/values (ms; ``nan`` before two ticks)."""
        iv, wk = self.intervals.summary(), self.work.summary()
        return {
            "tick_interval_p50_ms": f"{iv.p50:.2f}",
            "tick_interval_p99_ms": f"{iv.p99:.2f}",
            "tick_interval_max_ms": f"{iv.max:.2f}",
            "tick_work_p99_ms": f"{wk.p99:.3f}",
            "late_ticks": str(self.late),
            "longest_tick_gap_ms": f"{self.longest_gap_ms:.1f}",
        }
