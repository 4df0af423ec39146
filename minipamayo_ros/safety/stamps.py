"""Stamp relations shared by every input: not too far in the future, not older than the window,
and detection of a real clock jump (the ROS clock itself going back: bag loop, sim restart)."""

from __future__ import annotations

import math

from minipamayo_ros.safety.rejection import FUTURE_STAMP, NON_FINITE, OLD_STAMP, Rejection

#: [s] the ROS clock going back by more than this is a clock reset, not jitter
CLOCK_JUMP_S = 1.0


def check_stamp(stamp: float, now: float, max_future: float, max_age: float,
                field: str = "header.stamp") -> Rejection | None:
    """Reject ``stamp`` [s] if non-finite, more than ``max_future`` [s] ahead of ``now`` or more
    than ``max_age`` [s] behind it (both on the ROS clock)."""
    if not math.isfinite(stamp):
        return Rejection(NON_FINITE, field, stamp, "not finite")
    ahead = stamp - now
    if ahead > max_future:
        return Rejection(FUTURE_STAMP, field, stamp,
                         f"{ahead:.3f} s ahead of the ROS clock (> {max_future:g} s; clock mismatch?)")
    if -ahead > max_age:
        return Rejection(OLD_STAMP, field, stamp, f"{-ahead:.3f} s old (> {max_age:g} s)")
    return None


class ClockJumpDetector:
    """Watches the ROS clock; :meth:`update` is True once when it jumps back by > ``threshold``.

    Only the clock itself counts: an input stamp far from the clock is rejected by
    :func:`check_stamp`, so one outlier can never look like (or hide) a reset.
    """

    def __init__(self, threshold: float = CLOCK_JUMP_S) -> None:
        self.threshold = threshold
        self._last: float | None = None
        self.jumps = 0

    def update(self, now: float) -> bool:
        if not math.isfinite(now):
            return False
        jumped = self._last is not None and now < self._last - self.threshold
        if jumped:
            self.jumps += 1
        if self._last is None or jumped or now > self._last:
            self._last = now
        return jumped
