"""Lookahead point on a polyline: interpolated (never snapped to a waypoint), searched forward
from the point of the path closest to the vehicle (the origin of the body frame)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class PathPoint:
    """A point on a polyline: position [m], segment index and fraction along that segment."""

    x: float
    y: float
    segment: int
    fraction: float

    @property
    def distance(self) -> float:
        """[m] distance from the origin (the vehicle)."""
        return math.hypot(self.x, self.y)


def closest_point(points: NDArray[np.float64]) -> PathPoint:
    """The point of the ``(M, 2)`` polyline (M >= 2) nearest to the origin."""
    a = points[:-1]
    d = points[1:] - a
    len2 = np.einsum("ij,ij->i", d, d)
    u = np.where(len2 > 1e-12, -np.einsum("ij,ij->i", a, d) / np.maximum(len2, 1e-12), 0.0)
    u = np.clip(u, 0.0, 1.0)
    proj = a + d * u[:, None]
    i = int(np.argmin(np.einsum("ij,ij->i", proj, proj)))
    return PathPoint(float(proj[i, 0]), float(proj[i, 1]), i, float(u[i]))


def _circle_exit(ax: float, ay: float, bx: float, by: float, radius: float) -> float | None:
    """Largest ``u`` in [0, 1] with ``|a + u (b - a)| = radius``, given ``|a| <= radius``."""
    dx, dy = bx - ax, by - ay
    qa = dx * dx + dy * dy
    if qa < 1e-12:
        return None
    qb = 2.0 * (ax * dx + ay * dy)
    qc = ax * ax + ay * ay - radius * radius
    disc = qb * qb - 4.0 * qa * qc
    if disc < 0.0:
        return None
    u = (-qb + math.sqrt(disc)) / (2.0 * qa)
    return u if 0.0 <= u <= 1.0 + 1e-9 else None


def lookahead_point(points: NDArray[np.float64], distance: float) -> PathPoint:
    """First point at ``distance`` [m] from the origin along the polyline, after its closest point.

    If the vehicle is farther than ``distance`` from the path, the closest point is returned
    (steer straight back to the path). If the polyline ends inside the circle, its last point is
    returned: callers extend the path (see ``motion_compensation.plan_polyline``) so that this
    only happens for a path shorter than the lookahead even after extension.
    """
    start = closest_point(points)
    if start.distance >= distance:
        return start
    n = len(points)
    dist = np.hypot(points[:, 0], points[:, 1])
    beyond = np.flatnonzero(dist[start.segment + 1:] >= distance)
    if beyond.size == 0:
        last = points[-1]
        return PathPoint(float(last[0]), float(last[1]), n - 2, 1.0)
    j = start.segment + 1 + int(beyond[0])           # first vertex outside the circle
    a = points[j - 1] if j - 1 > start.segment else np.array([start.x, start.y])
    b = points[j]
    u = _circle_exit(float(a[0]), float(a[1]), float(b[0]), float(b[1]), distance)
    if u is None:  # numerically degenerate: take the vertex itself
        return PathPoint(float(b[0]), float(b[1]), j - 1, 1.0)
    p = a + u * (b - a)
    seg_a = points[j - 1]
    seg_len = float(np.hypot(*(points[j] - seg_a)))
    frac = float(np.hypot(*(p - seg_a))) / seg_len if seg_len > 1e-12 else 1.0
    return PathPoint(float(p[0]), float(p[1]), j - 1, min(frac, 1.0))
