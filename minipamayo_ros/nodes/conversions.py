"""Message <-> core conversions shared by the nodes (the only place that knows both sides)."""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from nav_msgs.msg import Odometry

from minipamayo_ros.geometry import Pose2D, yaw_from_quaternion
from minipamayo_ros.msg import Trajectory
from minipamayo_ros.pose_history import OdometrySample
from minipamayo_ros.safety.odometry_input import OdometryFields
from minipamayo_ros.safety.trajectory_input import TrajectoryFields
from minipamayo_ros.trajectory import PlannedTrajectory


def time_to_sec(t: Time) -> float:
    """builtin_interfaces/Time -> float seconds."""
    return t.sec + t.nanosec * 1e-9


def sec_to_time(seconds: float) -> Time:
    """float seconds (>= 0) -> builtin_interfaces/Time (rounded to the nanosecond)."""
    ns = int(round(seconds * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def odometry_to_fields(msg: Odometry) -> OdometryFields:
    """nav_msgs/Odometry -> the unvalidated fields the nodes validate (``safety.odometry_input``)."""
    p, q, tw = msg.pose.pose.position, msg.pose.pose.orientation, msg.twist.twist
    return OdometryFields(time_to_sec(msg.header.stamp), p.x, p.y, q.x, q.y, q.z, q.w, tw.linear.x,
                          tw.angular.z)


def odometry_to_sample(msg: Odometry) -> OdometrySample:
    """nav_msgs/Odometry (pose in odom, twist in the child/body frame) -> OdometrySample.

    Unvalidated (recording, tests); nodes use :func:`odometry_to_fields` and the safety core."""
    q = msg.pose.pose.orientation
    p = msg.pose.pose.position
    return OdometrySample(
        stamp=time_to_sec(msg.header.stamp),
        pose=Pose2D(p.x, p.y, yaw_from_quaternion(q.x, q.y, q.z, q.w)),
        speed=msg.twist.twist.linear.x,
        yaw_rate=msg.twist.twist.angular.z,
    )


def trajectory_to_msg(traj: PlannedTrajectory) -> Trajectory:
    msg = Trajectory()
    msg.header.stamp = sec_to_time(traj.stamp)
    msg.header.frame_id = traj.frame_id
    msg.sequence = int(traj.sequence)
    msg.dt = float(traj.dt)
    msg.horizon = float(traj.horizon)
    pts = np.asarray(traj.points, dtype=np.float32)
    # array.array assignment via numpy is ~100x faster than Python lists for rosidl arrays
    msg.x = pts[:, 0].copy()
    msg.y = pts[:, 1].copy()
    msg.speed = np.asarray(traj.speeds, dtype=np.float32)
    msg.uncertainty = float(traj.uncertainty)
    msg.model_id = traj.model_id
    msg.inference_latency_ms = float(traj.inference_latency_ms)
    msg.end_to_end_latency_ms = float(traj.end_to_end_latency_ms)
    return msg


def msg_to_trajectory_fields(msg: Trajectory) -> TrajectoryFields:
    """Trajectory message -> its unvalidated fields (validated by ``safety.trajectory_input``)."""
    return TrajectoryFields(
        stamp=time_to_sec(msg.header.stamp),
        frame_id=msg.header.frame_id,
        x=np.asarray(msg.x, dtype=np.float64),
        y=np.asarray(msg.y, dtype=np.float64),
        speed=np.asarray(msg.speed, dtype=np.float64),
        dt=float(msg.dt),
        uncertainty=float(msg.uncertainty),
        sequence=int(msg.sequence),
        model_id=msg.model_id,
        inference_latency_ms=float(msg.inference_latency_ms),
        end_to_end_latency_ms=float(msg.end_to_end_latency_ms),
    )


def msg_to_trajectory(msg: Trajectory) -> PlannedTrajectory:
    """Trajectory message -> core trajectory, unvalidated (x/y of different lengths are cut to the
    shorter); the follower validates the fields with ``safety.trajectory_input`` instead."""
    return msg_to_trajectory_fields(msg).to_trajectory()
