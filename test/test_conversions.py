"""Message <-> core conversions."""

from __future__ import annotations

import numpy as np
import pytest
from nav_msgs.msg import Odometry

from minipamayo_ros.geometry import Pose2D
from minipamayo_ros.nodes.conversions import (
    msg_to_trajectory,
    msg_to_trajectory_fields,
    odometry_to_sample,
    sample_to_odometry,
    sec_to_time,
    time_to_sec,
    trajectory_to_msg,
)
from minipamayo_ros.pose_history import OdometrySample
from minipamayo_ros.safety.trajectory_input import check_trajectory, trajectory_error
from minipamayo_ros.trajectory import PlannedTrajectory


def test_time_round_trip() -> None:
    t = sec_to_time(12.345678901)
    assert (t.sec, t.nanosec) == (12, 345678901)
    assert time_to_sec(t) == pytest.approx(12.345678901, abs=1e-9)


def test_trajectory_round_trip() -> None:
    t = np.arange(1, 21) * 0.1
    traj = PlannedTrajectory(stamp=5.5, points=np.stack((5 * t, 0.1 * t**2), 1), speeds=np.full(20, 5.0),
                             uncertainty=0.2, sequence=3, model_id="tiny@abc")
    back = msg_to_trajectory(trajectory_to_msg(traj))
    assert back.stamp == pytest.approx(5.5) and back.sequence == 3 and back.model_id == "tiny@abc"
    np.testing.assert_allclose(back.points, traj.points, rtol=1e-6)
    assert back.horizon == pytest.approx(2.0) and trajectory_error(back) is None


def test_mismatched_arrays_are_rejected_for_their_lengths() -> None:
    """Issue 13 defect 6 (failed before: "needs at least 2 waypoints, got 0")."""
    msg = trajectory_to_msg(PlannedTrajectory(0.0, np.zeros((3, 2)) + [[1, 0]], np.ones(3)))
    msg.y = [0.0]
    rejection = check_trajectory(msg_to_trajectory_fields(msg))
    assert rejection is not None and rejection.kind == "bad_shape"
    assert "lengths 3/1/3" in str(rejection) and "equal lengths" in str(rejection)
    assert trajectory_error(msg_to_trajectory(msg)) is not None


#: heading 0.4 rad about +z (REP-103: counter-clockwise, z up) as a quaternion (x, y, z, w) =
#: (0, 0, sin 0.2, cos 0.2), written out here, not computed by minipamayo_ros.geometry
YAW_04 = (0.0, 0.0, 0.19866933079506122, 0.9800665778412416)


def test_odometry_to_sample() -> None:
    msg = Odometry()
    msg.header.stamp = sec_to_time(1.5)
    msg.pose.pose.position.x, msg.pose.pose.position.y = 3.0, -1.0
    o = msg.pose.pose.orientation
    o.x, o.y, o.z, o.w = YAW_04
    msg.twist.twist.linear.x, msg.twist.twist.angular.z = 4.0, 0.2
    s = odometry_to_sample(msg)
    assert (s.stamp, s.pose.x, s.pose.y, s.speed, s.yaw_rate) == pytest.approx((1.5, 3.0, -1.0, 4.0, 0.2))
    assert s.pose.yaw == pytest.approx(0.4)


def test_sample_to_odometry() -> None:
    msg = sample_to_odometry(OdometrySample(2.25, Pose2D(3.0, -1.0, 0.4), speed=4.0, yaw_rate=0.2))
    assert time_to_sec(msg.header.stamp) == pytest.approx(2.25)
    assert (msg.header.frame_id, msg.child_frame_id) == ("odom", "base_link")
    o = msg.pose.pose.orientation
    np.testing.assert_allclose((o.x, o.y, o.z, o.w), YAW_04, atol=1e-12)
    assert (msg.pose.pose.position.x, msg.pose.pose.position.y) == (3.0, -1.0)
    assert (msg.twist.twist.linear.x, msg.twist.twist.angular.z) == (4.0, 0.2)
