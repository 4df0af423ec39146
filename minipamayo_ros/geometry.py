"""Planar (SE(2)) geometry in REP-103 conventions: x forward, y left, yaw CCW, metres and radians.

Poses are ``(x, y, yaw)``; point sets are ``(N, 2)`` float arrays. Everything is vectorised numpy,
because the follower runs these at 50-100 Hz and the simulator far above real time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def wrap_angle(angle: float | FloatArray) -> float | FloatArray:
    """Wrap an angle [rad] (scalar or array) into [-pi, pi)."""
    return (angle + np.pi) % (2.0 * np.pi) - np.pi


@dataclass(frozen=True)
class Pose2D:
    """A planar pose: position [m] and heading [rad] of a frame expressed in a parent frame."""

    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0

    def compose(self, other: Pose2D) -> Pose2D:
        """``self * other``: ``other`` is expressed in ``self``'s frame; result in the parent frame."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        return Pose2D(
            self.x + c * other.x - s * other.y,
            self.y + s * other.x + c * other.y,
            float(wrap_angle(self.yaw + other.yaw)),
        )

    def inverse(self) -> Pose2D:
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        return Pose2D(-c * self.x - s * self.y, s * self.x - c * self.y, float(wrap_angle(-self.yaw)))

    def relative_to(self, base: Pose2D) -> Pose2D:
        """This pose expressed in the frame of ``base`` (both given in the same parent frame)."""
        return base.inverse().compose(self)

    def transform_points(self, points: FloatArray) -> FloatArray:
        """Map ``(N, 2)`` points from this pose's frame into the parent frame."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        p = np.asarray(points, dtype=np.float64)
        return np.stack(
            (self.x + c * p[:, 0] - s * p[:, 1], self.y + s * p[:, 0] + c * p[:, 1]), axis=1
        )

    def as_array(self) -> FloatArray:
        return np.array([self.x, self.y, self.yaw])


def yaw_from_quaternion(x: float, y: float, z: float, w: float) -> float:
    """Heading [rad] of a quaternion (rotation about z; roll/pitch ignored)."""
    return float(np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)))


def quaternion_from_yaw(yaw: float) -> tuple[float, float, float, float]:
    """Quaternion ``(x, y, z, w)`` of a rotation by ``yaw`` [rad] about z."""
    return (0.0, 0.0, float(np.sin(yaw / 2.0)), float(np.cos(yaw / 2.0)))


def polyline_arc_length(points: FloatArray) -> FloatArray:
    """Cumulative arc length [m] at each vertex of an ``(N, 2)`` polyline (first entry 0)."""
    seg = np.hypot(*np.diff(np.asarray(points, dtype=np.float64), axis=0).T)
    return np.concatenate(([0.0], np.cumsum(seg)))
