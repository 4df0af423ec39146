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
