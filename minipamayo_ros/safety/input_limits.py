"""Input and plan limits shared by the policy and follower nodes.

Declared once so both nodes check odometry and plans against the same limits and the same
defaults: a plan the policy would publish is a plan the follower accepts. Each node still
declares them as its own ROS parameters (``config/policy.yaml``, ``config/follower.yaml``); on a
vehicle, set the shared ones (``wheelbase``, ``max_steer``, ``plan_*``) once for both nodes in the
``/**`` section of the vehicle file (``config/drive.yaml``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from minipamayo_ros.params import param
from minipamayo_ros.safety.odometry_input import OdometryLimits
from minipamayo_ros.safety.plan_checks import PlanLimits
from minipamayo_ros.safety.trajectory_input import TrajectoryLimits


@dataclass(frozen=True)
class InputLimitParams:
    """Odometry / plan / stamp limits and the vehicle geometry plans are checked against (SI units,
    REP-103); the node configs inherit them."""

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
    # --- the vehicle and what a plan may ask of it (safety.plan_checks; docs/follower.md) -----------
    wheelbase: float = param(2.7, "distance rear axle - front axle (odometry is the rear axle); with "
                             "max_steer it bounds the curvature of a plan", "m", min=0.05, max=10.0)
    max_steer: float = param(0.5, "front-wheel steering angle limit; plans curving more than "
                             "tan(max_steer) / wheelbase are rejected", "rad", min=0.01, max=1.5)
    plan_max_speed: float = param(
        40.0, "a trajectory planning faster than this, or with waypoints further apart than reachable "
        "at it, is rejected: the policy does not publish it, the follower does not follow it", "m/s",
        min=1.0, max=200.0)
    plan_max_lateral_accel: float = param(
        6.0, "a plan asking for more lateral acceleration (speed^2 * curvature) is rejected (the "
        "follower's own speed cap, max_lateral_accel, is lower)", "m/s^2", min=0.5, max=50.0)
    plan_max_accel: float = param(4.0, "a plan accelerating harder than this between waypoints is "
                                  "rejected", "m/s^2", min=0.5, max=50.0)
    plan_max_decel: float = param(8.0, "a plan braking harder than this (positive) between waypoints is "
                                  "rejected", "m/s^2", min=0.5, max=50.0)
    plan_max_jerk: float = param(100.0, "a plan whose acceleration changes faster than this between "
                                 "waypoints is rejected", "m/s^3", min=1.0, max=10000.0)
    plan_distance_tolerance: float = param(
        0.5, "speeds and waypoint spacing must agree: path length (at least) and distance from the "
        "vehicle (at most) vs the distance the speeds cover, within this plus 10 % of it", "m",
        min=0.05, max=20.0)

    def odometry_limits(self, max_age: float = OdometryLimits.max_age) -> OdometryLimits:
        """The odometry validation limits; ``max_age`` [s]: oldest stamp kept (history window)."""
        return OdometryLimits(max_speed=self.odom_max_speed, max_yaw_rate=self.odom_max_yaw_rate,
                              max_accel=self.odom_max_accel, max_future=self.max_stamp_future,
                              max_age=max_age)

    def trajectory_limits(self, frame_id: str) -> TrajectoryLimits:
        """The trajectory check's limits (policy output and follower input alike)."""
        return TrajectoryLimits(frame_id=frame_id, max_speed=self.plan_max_speed, plan=PlanLimits(
            max_curvature=math.tan(self.max_steer) / self.wheelbase,
            max_lateral_accel=self.plan_max_lateral_accel, max_accel=self.plan_max_accel,
            max_decel=self.plan_max_decel, max_jerk=self.plan_max_jerk,
            distance_tolerance=self.plan_distance_tolerance))
