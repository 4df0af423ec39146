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
    return _closest(points.tolist())


def _closest(pts: list[list[float]]) -> PathPoint:
    """:func:`closest_point` on a list of ``[x, y]``: plain floats, because for the ~25 vertices of a
    plan a loop costs a fraction of numpy's per-call overhead (the follower runs this at 100 Hz:
    docs/latency.md, "CPU per node"). The first of equally near points wins; a polyline with no
    finite point gives a NaN point (the command guard turns that into a controlled stop)."""
    best_d2, best = math.inf, (math.nan, math.nan, 0, 0.0)
    ax, ay = pts[0]
    for i in range(1, len(pts)):
        bx, by = pts[i]
        dx, dy = bx - ax, by - ay
        len2 = dx * dx + dy * dy
        u = min(max(-(ax * dx + ay * dy) / len2, 0.0), 1.0) if len2 > 1e-12 else 0.0
        px, py = ax + dx * u, ay + dy * u
        d2 = px * px + py * py
        if d2 < best_d2:
            best_d2, best = d2, (px, py, i - 1, u)
        ax, ay = bx, by
    return PathPoint(*best)


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
    pts = points.tolist()
    start = _closest(pts)
    if start.distance >= distance:
        return start
    n = len(pts)
    j = next((k for k in range(start.segment + 1, n) if math.hypot(*pts[k]) >= distance), None)
    if j is None:  # first vertex outside the circle: none
        return PathPoint(pts[-1][0], pts[-1][1], n - 2, 1.0)
    ax, ay = pts[j - 1] if j - 1 > start.segment else (start.x, start.y)
    bx, by = pts[j]
    u = _circle_exit(ax, ay, bx, by, distance)
    if u is None:  # numerically degenerate: take the vertex itself
        return PathPoint(bx, by, j - 1, 1.0)
    px, py = ax + u * (bx - ax), ay + u * (by - ay)
    sx, sy = pts[j - 1]
    seg_len = math.hypot(bx - sx, by - sy)
    frac = math.hypot(px - sx, py - sy) / seg_len if seg_len > 1e-12 else 1.0
    return PathPoint(px, py, j - 1, min(frac, 1.0))
