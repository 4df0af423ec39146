"""Per input topic: watchdog state, rejection counters and rate-limited log text (no ROS).

Like Autoware's ``topic_state_monitor``: from the arrival times of *accepted* samples on the node
clock, a topic is NEVER_RECEIVED, STALE (nothing for ``stale_after`` s), RATE_TOO_LOW (fewer than
``min_rate_hz`` over the last ``rate_window`` s, judged once the topic has been up that long) or
OK. Rejections are counted per kind; :meth:`InputMonitor.rejected` returns the text to log at most
once per ``log_interval`` per kind (wall clock), with how many were suppressed meanwhile.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass
from enum import Enum

from minipamayo_ros.safety.log_limit import LogLimiter
from minipamayo_ros.safety.rejection import Rejection

# diagnostic_msgs/DiagnosticStatus levels (ROS-free copies)
OK, WARN, ERROR = 0, 1, 2


class TopicState(Enum):
    OK = "OK"
    NEVER_RECEIVED = "never received"
    STALE = "stale"
    RATE_TOO_LOW = "rate too low"


_LEVEL = {TopicState.OK: OK, TopicState.RATE_TOO_LOW: WARN, TopicState.NEVER_RECEIVED: WARN,
          TopicState.STALE: ERROR}


@dataclass(frozen=True)
class InputReport:
    """One diagnostic status worth of an input's health."""

    level: int
    state: TopicState
    message: str
    values: dict[str, str]


class InputMonitor:
    def __init__(self, topic: str, stale_after: float, min_rate_hz: float,
                 rate_window: float | None = None, log_interval: float = 2.0) -> None:
        self.topic = topic
        self.stale_after = stale_after       # [s] ROS clock
        self.min_rate_hz = min_rate_hz       # [Hz]
        self.rate_window = rate_window if rate_window is not None else max(1.0, 3.0 / max(min_rate_hz, 1e-3))
        self.log_interval = log_interval     # [s] wall clock
        self.received = 0
        self.rejections: Counter[str] = Counter()
        self.last_rejection = ""
        self._arrivals: deque[float] = deque()
        self._first: float | None = None          # [s] first arrival since start / clock reset
        self._last_arrival = -math.inf
        self._log_limit = LogLimiter(log_interval)
        self._last_rejection_at = -math.inf  # [s] ROS clock

    # --- events --------------------------------------------------------------------------------
    def accepted(self, now: float) -> None:
        """A sample passed validation at node time ``now`` [s]."""
        self.received += 1
        if self._first is None:
            self._first = now
        self._arrivals.append(now)
        self._last_arrival = now
        self._trim(now)

    def rejected(self, rejection: Rejection, now: float, wall_now: float) -> str | None:
        """Count a dropped sample; returns the log line if this kind was not logged recently."""
        kind = rejection.kind
        self.rejections[kind] += 1
        self.last_rejection = f"{kind}: {rejection}"
        self._last_rejection_at = now
        more = self._log_limit.allow(kind, wall_now)
        if more is None:
            return None
        tail = f" ({more} more {kind} since the last message)" if more else ""
        return f"{self.topic}: dropped a sample ({kind}): {rejection}{tail}"

    def clock_reset(self) -> None:
        """The ROS clock jumped back: arrival times are meaningless now."""
        self._arrivals.clear()
        self._first = None
        self._last_arrival = -math.inf
        self._last_rejection_at = -math.inf

    # --- state ---------------------------------------------------------------------------------
    def _trim(self, now: float) -> None:
        while self._arrivals and (self._arrivals[0] < now - self.rate_window or len(self._arrivals) > 10000):
            self._arrivals.popleft()

    def rate_hz(self, now: float) -> float:
        self._trim(now)
        return len(self._arrivals) / self.rate_window

    def state(self, now: float) -> TopicState:
        if self.received == 0:
            return TopicState.NEVER_RECEIVED
        if self._first is None or now - self._last_arrival > self.stale_after:
            return TopicState.STALE
        if now - self._first >= self.rate_window and self.rate_hz(now) < self.min_rate_hz:
            return TopicState.RATE_TOO_LOW
        return TopicState.OK

    def report(self, now: float) -> InputReport:
        state = self.state(now)
        level = _LEVEL[state]
        message = state.value
        recent = now - self._last_rejection_at <= max(self.rate_window, self.log_interval)
        if recent:
            level = max(level, WARN)
            message += f"; rejecting samples ({self.last_rejection})"
        values = {
            "state": state.value,
            "received": str(self.received),
            "rate_hz": f"{self.rate_hz(now):.1f}",
            "min_rate_hz": f"{self.min_rate_hz:g}",
            "stale_after_s": f"{self.stale_after:g}",
            "rejected": str(sum(self.rejections.values())),
            **{f"rejected.{k}": str(n) for k, n in sorted(self.rejections.items())},
            "last_rejection": self.last_rejection,
        }
        return InputReport(level, state, message, values)
