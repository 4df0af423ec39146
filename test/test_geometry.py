"""Core geometry and pose history (no ROS)."""

from __future__ import annotations

import numpy as np
import pytest

from minipamayo_ros.geometry import (
    Pose2D,
    polyline_arc_length,
    quaternion_from_yaw,
    wrap_angle,
    yaw_from_quaternion,
)
from minipamayo_ros.pose_history import OdometrySample, PoseHistory


def test_wrap_angle_scalar_and_array() -> None:
    assert wrap_angle(3 * np.pi / 2) == pytest.approx(-np.pi / 2)
    np.testing.assert_allclose(wrap_angle(np.array([0.0, 2 * np.pi + 0.1])), [0.0, 0.1], atol=1e-12)


def test_compose_inverse_is_identity() -> None:
    a = Pose2D(1.0, -2.0, 0.7)
    ident = a.compose(a.inverse())
    assert ident.x == pytest.approx(0.0, abs=1e-12) and ident.y == pytest.approx(0.0, abs=1e-12)
    assert ident.yaw == pytest.approx(0.0, abs=1e-12)


def test_relative_to_known_displacement() -> None:
    """A point 10 m ahead of a car that then drove 2 m forward and turned 90 deg left."""
    base = Pose2D(0.0, 0.0, 0.0)
    moved = Pose2D(2.0, 0.0, np.pi / 2)
    target_in_world = base.transform_points(np.array([[10.0, 0.0]]))
    target_in_moved = moved.inverse().transform_points(target_in_world)
    np.testing.assert_allclose(target_in_moved, [[0.0, -8.0]], atol=1e-12)
    rel = moved.relative_to(base)
    assert (rel.x, rel.y, rel.yaw) == pytest.approx((2.0, 0.0, np.pi / 2))


def _rotate(q: tuple[float, float, float, float], v: np.ndarray) -> np.ndarray:
    """``v`` rotated by the unit quaternion ``q = (x, y, z, w)``: v' = v + 2w (u x v) + 2 u x (u x v),
    the textbook formula, written here independently of minipamayo_ros.geometry."""
    u, w = np.array(q[:3]), q[3]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


#: (yaw [rad], quaternion (x, y, z, w)) from the definition: a rotation about +z (REP-103, z up,
#: counter-clockwise positive) by yaw is (0, 0, sin(yaw/2), cos(yaw/2)); values written out by hand
KNOWN = [(0.0, (0.0, 0.0, 0.0, 1.0)), (np.pi / 2, (0.0, 0.0, 0.7071067811865476, 0.7071067811865476)),
         (-np.pi / 2, (0.0, 0.0, -0.7071067811865476, 0.7071067811865476)), (np.pi, (0.0, 0.0, 1.0, 0.0))]


@pytest.mark.parametrize(("yaw", "quat"), KNOWN)
def test_quaternions_of_known_headings(yaw: float, quat: tuple[float, ...]) -> None:
    np.testing.assert_allclose(quaternion_from_yaw(yaw), quat, atol=1e-12)
    assert wrap_angle(yaw_from_quaternion(*quat) - yaw) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("yaw", [-3.0, -0.5, 0.3, 1.2, 3.1])
def test_quaternion_turns_the_x_axis_to_the_heading(yaw: float) -> None:
    """The car's forward axis rotated by its orientation points along (cos yaw, sin yaw): a left
    turn (yaw > 0) points it to +y. Checked with an independent rotation formula."""
    fwd = _rotate(quaternion_from_yaw(yaw), np.array([1.0, 0.0, 0.0]))
    np.testing.assert_allclose(fwd, [np.cos(yaw), np.sin(yaw), 0.0], atol=1e-12)
    # and yaw_from_quaternion reads a heading off any quaternion with that forward axis, e.g. a
    # non-normalised-sign one (-q is the same rotation)
    q = tuple(-c for c in quaternion_from_yaw(yaw))
    assert wrap_angle(yaw_from_quaternion(*q) - yaw) == pytest.approx(0.0, abs=1e-12)


def test_arc_length() -> None:
    np.testing.assert_allclose(polyline_arc_length(np.array([[0, 0], [3, 4], [3, 5]])), [0, 5, 6])


def _history() -> PoseHistory:
    h = PoseHistory(max_age=2.0)
    for i in range(11):  # 1 m/s straight along x, 10 Hz
        t = 0.1 * i
        assert h.add(OdometrySample(t, Pose2D(t, 0.0, 0.0), speed=1.0))
    return h


def test_interpolation_between_samples() -> None:
    s = _history().interpolate(0.55)
    assert s is not None and s.pose.x == pytest.approx(0.55) and s.speed == pytest.approx(1.0)


def test_interpolation_wraps_yaw() -> None:
    h = PoseHistory()
    h.add(OdometrySample(0.0, Pose2D(0, 0, np.pi - 0.1)))
    h.add(OdometrySample(1.0, Pose2D(0, 0, -np.pi + 0.1)))
    s = h.interpolate(0.5)
    assert s is not None and abs(abs(s.pose.yaw) - np.pi) < 1e-9


def test_out_of_range_needs_explicit_extrapolation() -> None:
    h = _history()
    assert h.interpolate(1.2) is None
    s = h.interpolate(1.2, max_extrapolation=0.3)
    assert s is not None and s.pose.x == pytest.approx(1.2)


def test_constant_turn_extrapolation_follows_arc() -> None:
    h = PoseHistory()
    h.add(OdometrySample(0.0, Pose2D(0, 0, 0), speed=1.0, yaw_rate=1.0))
    s = h.interpolate(np.pi / 2, max_extrapolation=2.0)  # quarter circle of radius 1
    assert s is not None
    assert (s.pose.x, s.pose.y, s.pose.yaw) == pytest.approx((1.0, 1.0, np.pi / 2))


def test_rejects_out_of_order_and_nan_and_expires_old() -> None:
    h = _history()
    assert not h.add(OdometrySample(0.5, Pose2D()))
    assert not h.add(OdometrySample(1.5, Pose2D(float("nan"), 0, 0)))
    assert h.add(OdometrySample(3.0, Pose2D()))
    assert h.oldest is not None and h.oldest.stamp >= 1.0
