"""Rate-limited logging decisions, per kind of problem (no ROS).

One flood (e.g. bad images) must not hide another kind (bad odometry), so the limit is per key:
at most one message per ``period_s`` of wall time per key, and the caller learns how many it held
back meanwhile. Shared by the input monitors and the nodes' own warnings.
"""

from __future__ import annotations

import math
from collections import Counter


class LogLimiter:
    def __init__(self, period_s: float = 2.0) -> None:
        self.period_s = period_s  # [s] wall clock
        self._last: dict[str, float] = {}
        self._held: Counter[str] = Counter()

    def allow(self, key: str, wall_now: float) -> int | None:
        """None: hold this message back; else log it (the value: how many were held back since)."""
        if wall_now - self._last.get(key, -math.inf) < self.period_s:
            self._held[key] += 1
            return None
        self._last[key] = wall_now
        return self._held.pop(key, 0)
