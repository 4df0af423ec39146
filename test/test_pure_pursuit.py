"""Pure-pursuit building blocks without ROS: regulation functions, lookahead search, motion
compensation (known displacements, exact expected values)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minipamayo_ros.control import regulation as reg
from minipamayo_ros.control.motion_compensation import compensate, plan_polyline
from minipamayo_ros.control.pure_pursuit import closest_point, lookahead_point
from minipamayo_ros.geometry import Pose2D
from minipamayo_ros.pose_history import OdometrySample, PoseHistory
from minipamayo_ros.trajectory import PlannedTrajectory


def _traj(points, stamp: float = 0.0, speed: float = 5.0) -> PlannedTrajectory:
    p = np.asarray(points, dtype=float)
    return PlannedTrajectory(stamp=stamp, points=p, speeds=np.full(len(p), speed))


def _arc(curvature: float, spacing: float, n: int = 20) -> np.ndarray:
    s = spacing * np.arange(1, n + 1)
    if abs(curvature) < 1e-12:
        return np.stack((s, np.zeros_like(s)), 1)
    return np.stack((np.sin(curvature * s) / curvature, (1 - np.cos(curvature * s)) / curvature), 1)


# ---------------------------------------------------------------- regulation functions
def test_lookahead_distance_is_speed_scaled_and_clamped() -> None:
    assert reg.lookahead_distance(5.0, 0.6, 2.0, 15.0) == pytest.approx(3.0)
    assert reg.lookahead_distance(0.5, 0.6, 2.0, 15.0) == 2.0
    assert reg.lookahead_distance(50.0, 0.6, 2.0, 15.0) == 15.0
    assert reg.lookahead_distance(-5.0, 0.6, 2.0, 15.0) == pytest.approx(3.0)


def test_pursuit_curvature_of_points_on_a_known_circle() -> None:
    R = 10.0
    for angle in (0.1, 0.4, 1.0):  # points on the circle of radius R centred at (0, R)
        x, y = R * math.sin(angle), R * (1 - math.cos(angle))
        assert reg.pursuit_curvature(x, y) == pytest.approx(1 / R)
        assert reg.pursuit_curvature(x, -y) == pytest.approx(-1 / R)
    assert reg.pursuit_curvature(5.0, 0.0) == 0.0
    assert reg.pursuit_curvature(0.0, 0.0) == 0.0


def test_steering_curvature_round_trip_and_clamp() -> None:
    delta = reg.steering_from_curvature(0.1, 2.7)
    assert delta == pytest.approx(math.atan(0.27))
    assert reg.curvature_from_steering(delta, 2.7) == pytest.approx(0.1)
    assert reg.clamp(0.9, 0.5) == 0.5 and reg.clamp(-0.9, 0.5) == -0.5 and reg.clamp(0.2, 0.5) == 0.2


def test_rate_and_accel_limits() -> None:
    assert reg.rate_limit(0.5, 0.0, 1.0, 0.02) == pytest.approx(0.02)
    assert reg.rate_limit(-0.5, 0.0, 1.0, 0.02) == pytest.approx(-0.02)
    assert reg.rate_limit(0.01, 0.0, 1.0, 0.02) == pytest.approx(0.01)
    assert reg.accel_limited_speed(10.0, 5.0, 2.0, 4.0, 0.02) == pytest.approx(5.04)
    assert reg.accel_limited_speed(0.0, 5.0, 2.0, 4.0, 0.02) == pytest.approx(4.92)
    assert reg.stop_speed(5.0, 3.0, 0.02) == pytest.approx(4.94)
    assert reg.stop_speed(0.01, 3.0, 0.02) == 0.0


def test_curvature_speed_limit() -> None:
    assert reg.curvature_speed_limit(0.1, 2.5) == pytest.approx(5.0)
    assert reg.curvature_speed_limit(-0.1, 2.5) == pytest.approx(5.0)
    assert reg.curvature_speed_limit(0.0, 2.5) == math.inf


# ---------------------------------------------------------------- lookahead search
def test_straight_line_lookahead_is_interpolated_not_snapped() -> None:
    pts = plan_polyline(_traj(_arc(0.0, 0.5)), extension=1.0)
    goal = lookahead_point(pts, 3.3)  # waypoints every 0.5 m: 3.3 m lies between two of them
    assert (goal.x, goal.y) == pytest.approx((3.3, 0.0))
    assert goal.distance == pytest.approx(3.3)


def test_lookahead_on_a_circle_gives_its_curvature() -> None:
    for k in (0.1, -0.05):
        pts = plan_polyline(_traj(_arc(k, 0.5)), extension=1.0)
        goal = lookahead_point(pts, 4.0)
        assert goal.distance == pytest.approx(4.0)
        assert reg.pursuit_curvature(goal.x, goal.y) == pytest.approx(k, rel=1e-3)


def test_sparse_trajectory_two_points() -> None:
    pts = plan_polyline(_traj([[4.0, 0.0], [8.0, 4.0]]), extension=20.0)
    goal = lookahead_point(pts, 6.0)  # beyond the first waypoint, on the second segment
    assert goal.segment == 1 and goal.distance == pytest.approx(6.0)
    assert goal.y > 0.0 and goal.y == pytest.approx(goal.x - 4.0)


def test_short_trajectory_is_extended_along_its_last_segment() -> None:
    # slow plan on a left curve: 20 points over 1 m, far shorter than the 2 m minimum lookahead;
    # a follower returning zero curvature here (Autoware) would drive straight off the curve
    k = 0.2
    short = _arc(k, 0.05)
    pts = plan_polyline(_traj(short, speed=0.5), extension=10.0)
    goal = lookahead_point(pts, 2.0)
    assert goal.distance == pytest.approx(2.0)
    assert goal.segment == len(pts) - 2  # on the extension
    heading = math.atan2(*(short[-1] - short[-2])[::-1])
    expected = short[-1] + (np.hypot(*(np.array([goal.x, goal.y]) - short[-1]))
                            * np.array([math.cos(heading), math.sin(heading)]))
    assert (goal.x, goal.y) == pytest.approx(tuple(expected), abs=1e-9)
    assert reg.pursuit_curvature(goal.x, goal.y) > 0.05


def test_degenerate_standing_plan_extends_straight_ahead() -> None:
    pts = plan_polyline(_traj(np.zeros((20, 2)), speed=0.0), extension=5.0)
    goal = lookahead_point(pts, 2.0)
    assert (goal.x, goal.y) == pytest.approx((2.0, 0.0))


def test_lookahead_searches_forward_from_the_closest_point() -> None:
    # vehicle already 3 m along the path (path starts behind it): the goal is ahead, not behind
    pts = np.array([[-3.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [3.0, 0.0], [5.0, 0.0]])
    assert closest_point(pts).segment == 1
    goal = lookahead_point(pts, 2.5)
    assert (goal.x, goal.y) == pytest.approx((2.5, 0.0))


def test_far_from_path_steers_to_closest_point() -> None:
    pts = np.array([[0.0, 5.0], [10.0, 5.0]])
    goal = lookahead_point(pts, 2.0)
    assert (goal.x, goal.y) == pytest.approx((0.0, 5.0))


# ---------------------------------------------------------------- motion compensation
def _history(samples: list[tuple[float, Pose2D]]) -> PoseHistory:
    h = PoseHistory()
    for t, pose in samples:
        assert h.add(OdometrySample(t, pose, 5.0, 0.0))
    return h


def test_motion_compensation_with_known_displacement() -> None:
    # the car was at the origin heading +x at the image stamp (t=1.0); by t=1.2 it moved to
    # (1.0, 0.5) and turned 0.2 rad left. A waypoint at (5, 0) in the stamp frame is then at
    # R(-0.2) * ((5, 0) - (1, 0.5)) in the current body frame.
    h = _history([(0.9, Pose2D(-0.5, 0.0, 0.0)), (1.0, Pose2D(0.0, 0.0, 0.0)),
                  (1.2, Pose2D(1.0, 0.5, 0.2))])
    traj = _traj([[5.0, 0.0], [10.0, 0.0]], stamp=1.0)
    path = compensate(traj, h, now=1.2, max_extrapolation=0.1, extension=1.0)
    assert path is not None
    c, s = math.cos(0.2), math.sin(0.2)
    dx, dy = 5.0 - 1.0, 0.0 - 0.5
    assert tuple(path.points[1]) == pytest.approx((c * dx + s * dy, -s * dx + c * dy))
    # the origin of the plan (the car at the stamp) is now behind and to the right
    assert tuple(path.points[0]) == pytest.approx((c * -1.0 + s * -0.5, -s * -1.0 + c * -0.5))
    assert path.stamp_pose.yaw == pytest.approx(-0.2)


def test_motion_compensation_interpolates_stamp_between_samples() -> None:
    # straight motion along x at 5 m/s; stamp halfway between two samples
    h = _history([(0.0, Pose2D(0.0, 0.0, 0.0)), (0.1, Pose2D(0.5, 0.0, 0.0)), (0.3, Pose2D(1.5, 0.0, 0.0))])
    path = compensate(_traj([[4.0, 0.0], [6.0, 0.0]], stamp=0.05), h, now=0.3, max_extrapolation=0.1,
                      extension=1.0)
    assert path is not None
    assert tuple(path.points[1]) == pytest.approx((4.0 + 0.25 - 1.5, 0.0))


def test_motion_compensation_extrapolates_odometry_to_now_and_refuses_too_far() -> None:
    h = _history([(0.0, Pose2D(0.0, 0.0, 0.0)), (0.1, Pose2D(0.5, 0.0, 0.0))])  # 5 m/s
    path = compensate(_traj([[4.0, 0.0], [6.0, 0.0]], stamp=0.0), h, now=0.15, max_extrapolation=0.1,
                      extension=1.0)
    assert path is not None and path.points[1][0] == pytest.approx(4.0 - 0.75)
    assert compensate(_traj([[4.0, 0.0], [6.0, 0.0]], stamp=0.0), h, now=0.5, max_extrapolation=0.1,
                      extension=1.0) is None


@pytest.mark.parametrize(("speeds", "threshold", "planned_stop"), [
    ([0.05, 0.1, 0.0], 0.3, True),      # a learned crawl is a stop
    ([0.05, 0.1, 0.35], 0.3, False),    # one waypoint above the threshold: a real plan to move
    ([0.3, 0.3], 0.3, False),           # threshold itself is not "below"
    ([0.05, 0.1], 0.0, False),          # threshold <= 0 disables the rule
    ([], 0.3, False),                   # nothing left of the plan: not a planned stop
])
def test_is_planned_stop(speeds: list[float], threshold: float, planned_stop: bool) -> None:
    assert reg.is_planned_stop(speeds, threshold) is planned_stop
