"""The follower's last line of defence: a command is published only if it is finite and within
the configured limits; otherwise the controlled-stop command goes out and the reason is reported.

Validated inputs should never produce a bad command; this catches what they miss (a bug, a
parameter change mid-tick, numerics), so a NaN never reaches the actuators.
"""

from __future__ import annotations

import math
from typing import Protocol

#: relative tolerance on the limits (float32 messages, rounding)
TOLERANCE = 1e-6
#: every float a FollowerCommand publishes (a test checks this is all of them)
_FLOAT_FIELDS = ("stamp", "steering_angle", "curvature", "speed", "acceleration", "yaw_rate",
                 "trajectory_stamp", "lookahead_x", "lookahead_y", "lookahead_distance")


class CommandLimits(Protocol):
    """The limits a command is checked against (``control.config.FollowerConfig`` has them; the
    safety core sits below ``control`` and does not import it)."""

    @property
    def max_speed(self) -> float: ...      # [m/s]
    @property
    def max_steer(self) -> float: ...      # [rad]
    @property
    def wheelbase(self) -> float: ...      # [m]
    @property
    def max_accel(self) -> float: ...      # [m/s^2]
    @property
    def max_decel(self) -> float: ...      # [m/s^2]
    @property
    def stop_decel(self) -> float: ...     # [m/s^2]


def command_violation(cmd: object, cfg: CommandLimits, previous_speed: float, stopping: bool) -> str | None:
    """Why ``cmd`` (a ``FollowerCommand``) must not be published, or None.

    ``previous_speed`` [m/s] is the speed commanded on the previous tick; while ``stopping`` the
    speed must not rise.
    """
    for name in _FLOAT_FIELDS:
        value = getattr(cmd, name)
        if not math.isfinite(value):
            return f"{name} = {value!r} is not finite"
    tol = 1.0 + TOLERANCE
    speed, steer = cmd.speed, cmd.steering_angle  # type: ignore[attr-defined]
    if not 0.0 <= speed <= cfg.max_speed * tol + TOLERANCE:
        return f"speed = {speed:.6g} m/s outside [0, max_speed {cfg.max_speed:g}]"
    if abs(steer) > cfg.max_steer * tol:
        return f"steering_angle = {steer:.6g} rad beyond max_steer {cfg.max_steer:g}"
    max_curv = math.tan(cfg.max_steer) / cfg.wheelbase
    if abs(cmd.curvature) > max_curv * tol + TOLERANCE:  # type: ignore[attr-defined]
        return f"curvature = {cmd.curvature:.6g} 1/m beyond {max_curv:.6g}"  # type: ignore[attr-defined]
    max_accel = max(cfg.max_accel, cfg.max_decel, cfg.stop_decel)
    if abs(cmd.acceleration) > max_accel * tol + TOLERANCE:  # type: ignore[attr-defined]
        return f"acceleration = {cmd.acceleration:.6g} m/s^2 beyond {max_accel:g}"  # type: ignore[attr-defined]
    if stopping and speed > max(previous_speed, 0.0) * tol + TOLERANCE:
        return f"speed rises ({previous_speed:.6g} -> {speed:.6g} m/s) during a stop"
    return None
