"""The odometry-history input of the policy, computed one way for training data and runtime.

The model sees ``STATE_STEPS`` samples, ``STATE_DT`` apart, ending at the image stamp, each with
``STATE_FEATURES`` = (speed [m/s], yaw rate [rad/s], longitudinal acceleration [m/s^2]).
The simulator's dataset generator and the policy node both call :func:`state_history`, so the
model is trained on exactly what it is fed on the vehicle.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from minipamayo_ros.pose_history import PoseHistory

STATE_STEPS = 10
STATE_DT = 0.1  # [s]
STATE_FEATURES = ("speed", "yaw_rate", "accel")
#: odometry that must be buffered before an image for a full history [s]
REQUIRED_HISTORY = (STATE_STEPS - 1) * STATE_DT + STATE_DT


def state_history(
    history: PoseHistory, stamp: float, max_extrapolation: float = 0.1
) -> NDArray[np.float32] | None:
    """``(STATE_STEPS, 3)`` float32 features at ``stamp - (STATE_STEPS-1-k)*STATE_DT``, k=0..

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
    return np.stack((speed[1:], yaw_rate[1:], accel), axis=1).astype(np.float32)
