"""Motion compensation: a trajectory planned in the body frame at its image stamp, re-expressed
in the body frame *now*.

Between the image stamp and the control tick the vehicle has moved (model latency + trajectory
age, typically 0.15-0.5 s: 0.75-2.5 m at 5 m/s). Following the raw waypoints would steer from
where the car *was*. The odometry history gives the pose at the stamp and now (both in ``odom``);
their relative transform maps the waypoints into the current body frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from minipamayo_ros.geometry import Pose2D
from minipamayo_ros.pose_history import OdometrySample, PoseHistory
from minipamayo_ros.trajectory import PlannedTrajectory


@dataclass(frozen=True)
class CompensatedPath:
    """A trajectory as a polyline in the current body frame.

    ``points[0]`` is the vehicle position at the trajectory stamp (the plan starts there),
    ``points[1:N+1]`` the waypoints, ``points[-1]`` an extension along the last non-degenerate
    segment (so a short or slow trajectory still has a point at any lookahead distance).
    """

    points: NDArray[np.float64]        # (N + 2, 2) [m] in base_link now
    stamp_pose: Pose2D                 # body frame at the trajectory stamp, in base_link now


@dataclass(frozen=True)
class PlanGeometry:
    """What the polyline of a trajectory needs from the trajectory alone: computed once when it
    arrives, not on every control tick (the follower ticks 10-20 times per trajectory)."""

    base: NDArray[np.float64]          # (N + 1, 2) [m] origin, then the waypoints (own frame)
    direction: NDArray[np.float64]     # (2,) unit vector of the last non-degenerate segment (+x if none)


def plan_geometry(traj: PlannedTrajectory) -> PlanGeometry:
    pts = np.vstack((np.zeros((1, 2)), np.asarray(traj.points, dtype=np.float64)))
    seg = np.diff(pts, axis=0)
    lengths = np.hypot(seg[:, 0], seg[:, 1])
    moving = np.flatnonzero(lengths > 1e-6)
    direction = seg[moving[-1]] / lengths[moving[-1]] if moving.size else np.array([1.0, 0.0])
    return PlanGeometry(pts, direction)


def plan_polyline(traj: PlannedTrajectory, extension: float,
                  geometry: PlanGeometry | None = None) -> NDArray[np.float64]:
    """The trajectory's path in its own frame: origin, waypoints, then ``extension`` metres more
    along the last non-degenerate segment (the stamp's heading, +x, if there is none).
    ``geometry``: :func:`plan_geometry` of ``traj`` if the caller keeps it."""
    g = plan_geometry(traj) if geometry is None else geometry
    out = np.empty((len(g.base) + 1, 2))
    out[:-1] = g.base
    out[-1] = g.base[-1] + g.direction * extension
    return out


def relative_stamp_pose(history: PoseHistory, stamp: float, now: float, max_extrapolation: float,
                        at_now: OdometrySample | None = None) -> Pose2D | None:
    """Body frame at ``stamp`` expressed in the body frame at ``now`` (None if odometry misses
    either instant by more than ``max_extrapolation`` seconds). ``at_now``: the sample at ``now``
    if the caller already interpolated it."""
    at_stamp = history.interpolate(stamp, max_extrapolation)
    if at_now is None:
        at_now = history.interpolate(now, max_extrapolation)
    if at_stamp is None or at_now is None:
        return None
    return at_stamp.pose.relative_to(at_now.pose)


def compensate(traj: PlannedTrajectory, history: PoseHistory, now: float, max_extrapolation: float,
               extension: float, at_now: OdometrySample | None = None,
               geometry: PlanGeometry | None = None) -> CompensatedPath | None:
    """``traj`` as a :class:`CompensatedPath` in the body frame at ``now`` (None: no odometry).
    ``geometry``: :func:`plan_geometry` of ``traj``, if the caller keeps it per trajectory."""
    rel = relative_stamp_pose(history, traj.stamp, now, max_extrapolation, at_now)
    if rel is None:
        return None
    # the extension must reach past any lookahead even after the vehicle has moved along the plan
    ext = extension + float(np.hypot(rel.x, rel.y))
    return CompensatedPath(rel.transform_points(plan_polyline(traj, ext, geometry)), rel)
