"""Odometry at the node's edge: the one place that decides whether a sample may be stored.

Checks, in order (the first failure is the :class:`~.rejection.Rejection`): finite stamp, pose,
orientation and twist; position within :data:`MAX_POSITION`; a unit quaternion (an all-zero one
is not "yaw 0"); speed and yaw rate within the configured plausible ranges; stamp neither more
than ``max_future`` ahead of the ROS clock nor older than the history window; newer than the
last accepted sample; and an acceleration implied by the last accepted speed within
``max_accel``. A genuine speed step (odometry reset) is accepted once a second sample confirms
it, so only an isolated outlier is dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from minipamayo_ros.geometry import Pose2D, wrap_angle, yaw_from_quaternion
from minipamayo_ros.pose_history import OdometrySample
from minipamayo_ros.safety.rejection import (
    BAD_QUATERNION,
    IMPLAUSIBLE,
    NON_FINITE,
    OUT_OF_ORDER,
    OUT_OF_RANGE,
    Rejection,
)
from minipamayo_ros.safety.stamps import check_stamp

#: [m] |x|, |y| of the odometry pose beyond this are not a vehicle's odometry
MAX_POSITION = 1e7
#: |norm - 1| of the orientation quaternion beyond this is not a rotation
QUATERNION_TOLERANCE = 0.05
#: [s] shortest interval the implied acceleration is computed over (timestamp jitter)
ACCEL_MIN_DT = 0.1


@dataclass(frozen=True)
class OdometryLimits:
    """Plausible ranges (SI units); the nodes build it from their parameters."""

    max_speed: float = 40.0        # [m/s] |twist.linear.x|
    max_yaw_rate: float = 4.0      # [rad/s] |twist.angular.z|
    max_accel: float = 20.0        # [m/s^2] implied by consecutive speeds
    max_future: float = 0.1        # [s] stamp ahead of the ROS clock
    max_age: float = 3.0           # [s] stamp behind the ROS clock (the history window)


@dataclass(frozen=True)
class OdometryFields:
    """The fields of ``nav_msgs/Odometry`` the stack uses, unvalidated (SI units, REP-103)."""

    stamp: float
    x: float
    y: float
    qx: float
    qy: float
    qz: float
    qw: float
    speed: float        # twist.twist.linear.x, body frame
    yaw_rate: float     # twist.twist.angular.z
    yaw: float | None = None  # [rad] exact heading if the caller has one (quaternion = its image)

    @staticmethod
    def from_sample(sample: OdometrySample) -> OdometryFields:
        """For offline callers (simulation, evaluation, replay) that already hold a yaw."""
        yaw = sample.pose.yaw
        qz, qw = (math.sin(yaw / 2.0), math.cos(yaw / 2.0)) if math.isfinite(yaw) else (math.nan, math.nan)
        qx = qy = 0.0
        return OdometryFields(sample.stamp, sample.pose.x, sample.pose.y, qx, qy, qz, qw, sample.speed,
                              sample.yaw_rate, sample.pose.yaw)


class OdometryGate:
    """Stateless checks plus the one piece of state the outlier rule needs (see module doc)."""

    def __init__(self, limits: OdometryLimits | None = None) -> None:
        self.limits = limits or OdometryLimits()
        self._unconfirmed: OdometrySample | None = None  # last sample rejected for its speed step

    def reset(self) -> None:
        self._unconfirmed = None

    def check(self, f: OdometryFields, now: float, last: OdometrySample | None) -> OdometrySample | Rejection:
        """``f`` as an :class:`OdometrySample`, or why it must be dropped. ``last``: the newest
        stored sample; ``now``: the ROS clock [s]."""
        lim = self.limits
        for name, value in (("header.stamp", f.stamp), ("pose.pose.position.x", f.x),
                            ("pose.pose.position.y", f.y), ("pose.pose.orientation.x", f.qx),
                            ("pose.pose.orientation.y", f.qy), ("pose.pose.orientation.z", f.qz),
                            ("pose.pose.orientation.w", f.qw), ("twist.twist.linear.x", f.speed),
                            ("twist.twist.angular.z", f.yaw_rate)):
            if not math.isfinite(value):  # math, not numpy: this runs for every sample (50-100 Hz)
                return Rejection(NON_FINITE, name, float(value), "not finite")
        for name, value in (("pose.pose.position.x", f.x), ("pose.pose.position.y", f.y)):
            if abs(value) > MAX_POSITION:
                return Rejection(OUT_OF_RANGE, name, value, f"|value| > {MAX_POSITION:g} m")
        norm = math.sqrt(f.qx * f.qx + f.qy * f.qy + f.qz * f.qz + f.qw * f.qw)
        if not abs(norm - 1.0) <= QUATERNION_TOLERANCE:
            return Rejection(BAD_QUATERNION, "pose.pose.orientation",
                             f"({f.qx:.3g}, {f.qy:.3g}, {f.qz:.3g}, {f.qw:.3g})",
                             f"norm {norm:.3g}, not a unit quaternion")
        if abs(f.speed) > lim.max_speed:
            return Rejection(OUT_OF_RANGE, "twist.twist.linear.x", f.speed,
                             f"|speed| > odom_max_speed {lim.max_speed:g} m/s")
        if abs(f.yaw_rate) > lim.max_yaw_rate:
            return Rejection(OUT_OF_RANGE, "twist.twist.angular.z", f.yaw_rate,
                             f"|yaw rate| > odom_max_yaw_rate {lim.max_yaw_rate:g} rad/s")
        bad = check_stamp(f.stamp, now, lim.max_future, lim.max_age)
        if bad is not None:
            return bad
        if f.yaw is not None:
            yaw = f.yaw if abs(f.yaw) <= math.pi else float(wrap_angle(f.yaw))
        else:  # unit within rounding: as converted before (bit-identical replays); else normalised
            q = (f.qx, f.qy, f.qz, f.qw)
            yaw = yaw_from_quaternion(*(q if abs(norm - 1.0) < 1e-6 else (c / norm for c in q)))
        sample = OdometrySample(f.stamp, Pose2D(f.x, f.y, yaw), f.speed, f.yaw_rate)
        if last is None:
            self._unconfirmed = None
            return sample
        if f.stamp <= last.stamp:
            return Rejection(OUT_OF_ORDER, "header.stamp", f.stamp,
                             f"not newer than the last sample ({last.stamp - f.stamp:.3f} s older)")
        if not _plausible_step(last, sample, lim.max_accel):
            confirmed = self._unconfirmed is not None and sample.stamp > self._unconfirmed.stamp and \
                _plausible_step(self._unconfirmed, sample, lim.max_accel)
            if not confirmed:
                self._unconfirmed = sample
                accel = (sample.speed - last.speed) / max(sample.stamp - last.stamp, 1e-9)
                return Rejection(IMPLAUSIBLE, "twist.twist.linear.x", f.speed,
                                 f"implies {accel:.3g} m/s^2 from the last sample "
                                 f"(> odom_max_accel {lim.max_accel:g} m/s^2)")
        self._unconfirmed = None
        return sample


def _plausible_step(a: OdometrySample, b: OdometrySample, max_accel: float) -> bool:
    return abs(b.speed - a.speed) <= max_accel * max(b.stamp - a.stamp, ACCEL_MIN_DT)
