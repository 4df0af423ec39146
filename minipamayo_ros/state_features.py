"""The odometry-history input of the policy, computed one way for training data and runtime.

The model sees ``STATE_STEPS`` samples, ``STATE_DT`` apart, ending at the image stamp, each with
``STATE_FEATURES`` = (speed [m/s], yaw rate [rad/s], longitudinal acceleration [m/s^2], standing
time [s]). Every user keeps a :class:`StateHistory` (fed every accepted odometry sample) and calls
:func:`state_history`: the simulator's dataset generator, DAgger rollouts, the policy pipeline (the
node, the offline closed loop, bag replay), so the model is trained on exactly what it is fed on
the vehicle.

Why a standing time: the 1 s history looks the same after 1 s and after 20 s of standing, so a
policy that stopped at a stop line could not tell "just stopped" from "waited long enough", and
on some roads it waited for ever (docs/closed-loop-evaluation.md). The standing time is how long
the vehicle has stood still (odometry speed below :data:`STANDSTILL_SPEED`) without interruption
at each of the ten instants, capped at :data:`MAX_STANDING_TIME`; 0 while moving.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from numpy.typing import NDArray

from minipamayo_ros.pose_history import OdometrySample, PoseHistory

STATE_STEPS = 10
STATE_DT = 0.1  # [s]
STATE_FEATURES = ("speed", "yaw_rate", "accel", "standing_time")
#: odometry that must be buffered before an image for a full history [s]
REQUIRED_HISTORY = (STATE_STEPS - 1) * STATE_DT + STATE_DT
#: [m/s] |odometry speed| below this is standing still (the simulator's stop rule uses the same value)
STANDSTILL_SPEED = 0.1
#: [s] standing times are capped here: longer waits (a red light) look alike, the camera decides
MAX_STANDING_TIME = 10.0


class StandstillClock:
    """When the current standstill began (and the recent ones), from odometry in stamp order.

    A standstill starts at the stamp of the first sample below :data:`STANDSTILL_SPEED` and ends
    at the stamp of the first sample above it. Closed standstills are kept for ``keep`` seconds,
    so the standing time is known at every instant of the state window.
    """

    def __init__(self, keep: float = 2.0 * REQUIRED_HISTORY) -> None:
        self.keep = keep
        self._since: float | None = None                        # start of the ongoing standstill [s]
        self._spans: deque[tuple[float, float]] = deque()       # closed standstills (start, end) [s]

    def clear(self) -> None:
        self._since = None
        self._spans.clear()

    def add(self, stamp: float, speed: float) -> None:
        """One odometry sample (stamps increasing; the caller's history rejects the others)."""
        if abs(speed) < STANDSTILL_SPEED:
            if self._since is None:
                self._since = stamp
        elif self._since is not None:
            self._spans.append((self._since, stamp))
            self._since = None
        while self._spans and self._spans[0][1] < stamp - self.keep:
            self._spans.popleft()

    def standing_time(self, t: float) -> float:
        """[s] uninterrupted standing at time ``t`` (0 while moving), capped at MAX_STANDING_TIME."""
        if self._since is not None and t >= self._since:
            return min(t - self._since, MAX_STANDING_TIME)
        for start, end in self._spans:
            if start <= t < end:
                return min(t - start, MAX_STANDING_TIME)
        return 0.0


class StateHistory(PoseHistory):
    """A :class:`PoseHistory` that also keeps the :class:`StandstillClock` of what it accepted."""

    def __init__(self, max_age: float = 3.0, max_samples: int = 1000) -> None:
        super().__init__(max_age, max_samples)
        self.standstill = StandstillClock()

    def add(self, sample: OdometrySample) -> bool:
        if not super().add(sample):
            return False
        self.standstill.add(sample.stamp, sample.speed)
        return True

    def clear(self) -> None:
        super().clear()
        self.standstill.clear()


def state_history(
    history: StateHistory, stamp: float, max_extrapolation: float = 0.1
) -> NDArray[np.float32] | None:
    """``(STATE_STEPS, 4)`` float32 features at ``stamp - (STATE_STEPS-1-k)*STATE_DT``, k=0..

    Returns None when odometry does not cover the window (too short, or the newest sample is
    more than ``max_extrapolation`` [s] older than ``stamp``): the policy must not guess.
    Acceleration is the finite difference of speed over one step (the first step uses the
    sample one step earlier, hence the extra ``STATE_DT`` in :data:`REQUIRED_HISTORY`).
    """
    times = stamp - STATE_DT * np.arange(STATE_STEPS, -1, -1)  # STATE_STEPS + 1 instants
    samples = [history.interpolate(float(t), max_extrapolation) for t in times]
    if any(s is None for s in samples):
        return None
    speed = np.array([s.speed for s in samples])  # type: ignore[union-attr]
    yaw_rate = np.array([s.yaw_rate for s in samples])  # type: ignore[union-attr]
    accel = np.diff(speed) / STATE_DT
    standing = np.array([history.standstill.standing_time(float(t)) for t in times[1:]])
    return np.stack((speed[1:], yaw_rate[1:], accel, standing), axis=1).astype(np.float32)
