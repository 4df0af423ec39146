"""Input plausibility parameters shared by the policy and follower nodes.

Declared once so both nodes check odometry and plans against the same limits and the same
defaults: a plan the policy would publish is a plan the follower accepts. Each node still
declares them as its own ROS parameters (``config/policy.yaml``, ``config/follower.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass

from minipamayo_ros.params import param
from minipamayo_ros.safety.odometry_input import OdometryLimits


@dataclass(frozen=True)
class InputLimitParams:
    """Odometry / plan / stamp limits (SI units, REP-103); the node configs inherit them."""

    odom_max_speed: float = param(40.0, "odometry with |twist.linear.x| above this is rejected", "m/s",
                                  min=1.0, max=200.0)
    odom_max_yaw_rate: float = param(4.0, "odometry with |twist.angular.z| above this is rejected",
                                     "rad/s", min=0.1, max=50.0)
    odom_max_accel: float = param(
        20.0, "odometry whose speed implies more acceleration than this from the last sample is "
        "rejected (unless the next sample confirms the step)", "m/s^2", min=1.0, max=500.0)
    max_stamp_future: float = param(
        0.1, "input stamps further ahead of the ROS clock than this are rejected (clock mismatch)",
        "s", min=0.0, max=5.0)
    plan_max_speed: float = param(
        40.0, "a trajectory planning faster than this, or with waypoints further apart than reachable "
        "at it, is rejected: the policy does not publish it, the follower does not follow it", "m/s",
        min=1.0, max=200.0)

    def odometry_limits(self, max_age: float = OdometryLimits.max_age) -> OdometryLimits:
        """The odometry validation limits; ``max_age`` [s]: oldest stamp kept (history window)."""
        return OdometryLimits(max_speed=self.odom_max_speed, max_yaw_rate=self.odom_max_yaw_rate,
                              max_accel=self.odom_max_accel, max_future=self.max_stamp_future,
                              max_age=max_age)
