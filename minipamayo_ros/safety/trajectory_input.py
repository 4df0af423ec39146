"""Trajectories: the one check shared by the follower's input and the policy's output.

The policy runs :func:`check_trajectory` on what it is about to publish, rounded to the message's
float32 (:meth:`TrajectoryFields.as_published`), with the same limits the follower applies on
receipt, so it never publishes a trajectory the follower would reject.
Content rules: body frame (``frame_id`` = the configured base frame), equal x/y/speed lengths, at
least 2 waypoints, everything finite, ``MIN_DT <= dt <= MAX_DT`` and ``horizon = N * dt``,
``0 <= speed <= max_speed``, each waypoint reachable from the previous one (from the origin for
the first) at ``max_speed`` (+ :data:`STEP_SLACK`), then the consistency and physics checks of
:mod:`minipamayo_ros.safety.plan_checks` (speeds agree with the spacing, the path progresses in the
direction of travel, curvature, lateral / longitudinal acceleration, jerk).
Stamp rules (input only): see :func:`minipamayo_ros.safety.stamps.check_stamp`; who may publish
(follower only): :mod:`minipamayo_ros.safety.plan_source`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from minipamayo_ros.safety.plan_checks import PlanLimits, check_plan
from minipamayo_ros.safety.rejection import (
    BAD_SHAPE,
    IMPLAUSIBLE,
    OUT_OF_RANGE,
    WRONG_FRAME,
    Rejection,
    first_non_finite,
)
from minipamayo_ros.trajectory import PlannedTrajectory

#: [s] waypoint spacing accepted: a 5-10 Hz planner's (0.1 s) with a wide margin; 1e-6 s would
#: mean 10 km/s between waypoints 1 cm apart
MIN_DT = 0.01
MAX_DT = 1.0
#: relative tolerance of ``horizon == N * dt`` (both float32 in the message)
HORIZON_TOLERANCE = 1e-3
#: [m] tolerance on each waypoint step beyond ``max_speed * dt`` (model noise)
STEP_SLACK = 0.5


@dataclass(frozen=True)
class TrajectoryLimits:
    """Limits of the trajectory check; the nodes build them from their shared parameters
    (``InputLimitParams.trajectory_limits``, a test checks the defaults agree)."""

    frame_id: str = "base_link"   # the body frame the waypoints must be expressed in
    max_speed: float = 40.0       # [m/s] planned speeds and waypoint spacing / dt
    plan: PlanLimits = PlanLimits()  # consistency / physics (safety.plan_checks)


@dataclass(frozen=True)
class TrajectoryFields:
    """The fields of ``msg/Trajectory.msg``, unvalidated (arrays as received)."""

    stamp: float
    frame_id: str
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    speed: NDArray[np.float64]
    dt: float
    uncertainty: float = 0.0
    sequence: int = 0
    model_id: str = ""
    inference_latency_ms: float = 0.0
    end_to_end_latency_ms: float = 0.0
    horizon: float | None = None  # [s] as received (None: not carried, i.e. N * dt)
    producer: str = ""
    producer_instance: int = 0

    @staticmethod
    def from_trajectory(traj: PlannedTrajectory) -> TrajectoryFields:
        p = np.asarray(traj.points, dtype=np.float64).reshape(-1, 2) if np.size(traj.points) % 2 == 0 \
            else np.zeros((0, 2))
        return TrajectoryFields(traj.stamp, traj.frame_id, p[:, 0], p[:, 1],
                                np.asarray(traj.speeds, dtype=np.float64).reshape(-1), traj.dt,
                                traj.uncertainty, traj.sequence, traj.model_id,
                                traj.inference_latency_ms, traj.end_to_end_latency_ms,
                                producer=traj.producer, producer_instance=traj.producer_instance)

    def as_published(self) -> TrajectoryFields:
        """These fields as the follower receives them: ``msg/Trajectory.msg`` carries x, y, speed, dt,
        horizon and uncertainty as float32, so a value just inside a limit in float64 may round past
        it (or overflow to inf). The policy checks this, never the float64 original."""
        horizon = len(self.x) * self.dt if self.horizon is None else self.horizon
        with np.errstate(over="ignore"):  # overflow to inf is what the check must see
            f32 = [np.asarray(a, dtype=np.float64).astype(np.float32).astype(np.float64)
                   for a in (self.x, self.y, self.speed, self.dt, self.uncertainty, horizon)]
        return replace(self, x=f32[0], y=f32[1], speed=f32[2], dt=float(f32[3]), uncertainty=float(f32[4]),
                       horizon=float(f32[5]))

    def to_trajectory(self) -> PlannedTrajectory:
        """The core trajectory (only meaningful once :func:`check_trajectory` passed)."""
        n = min(len(self.x), len(self.y))
        return PlannedTrajectory(
            stamp=self.stamp, points=np.stack((self.x[:n], self.y[:n]), axis=1).astype(np.float64),
            speeds=np.asarray(self.speed, dtype=np.float64), dt=self.dt, uncertainty=self.uncertainty,
            sequence=self.sequence, model_id=self.model_id, frame_id=self.frame_id,
            inference_latency_ms=self.inference_latency_ms, end_to_end_latency_ms=self.end_to_end_latency_ms,
            producer=self.producer, producer_instance=self.producer_instance)


def check_trajectory(f: TrajectoryFields, limits: TrajectoryLimits | None = None) -> Rejection | None:
    """Why ``f`` must not be followed / published, or None (content rules of the module doc)."""
    lim = limits or TrajectoryLimits()
    if f.frame_id != lim.frame_id:
        return Rejection(WRONG_FRAME, "header.frame_id", repr(f.frame_id),
                         f"waypoints must be in the body frame '{lim.frame_id}'")
    x, y, v = (np.asarray(a, dtype=np.float64) for a in (f.x, f.y, f.speed))
    if x.ndim != 1 or x.shape != y.shape or x.shape != v.shape:
        return Rejection(BAD_SHAPE, "x/y/speed", f"lengths {x.size}/{y.size}/{v.size}",
                         "x, y and speed must have equal lengths")
    if x.size < 2:
        return Rejection(BAD_SHAPE, "x", f"{x.size} waypoints", "needs at least 2 waypoints")
    horizon = x.size * f.dt if f.horizon is None else f.horizon
    for name, arr in (("x", x), ("y", y), ("speed", v), ("dt", f.dt), ("horizon", horizon),
                      ("uncertainty", f.uncertainty)):
        bad = first_non_finite(name, arr)
        if bad is not None:
            return bad
    if not MIN_DT <= f.dt <= MAX_DT:
        return Rejection(OUT_OF_RANGE, "dt", f.dt, f"must be in [{MIN_DT:g}, {MAX_DT:g}] s")
    if abs(horizon - x.size * f.dt) > HORIZON_TOLERANCE * x.size * f.dt:
        return Rejection(OUT_OF_RANGE, "horizon", horizon,
                         f"must be {x.size} waypoints x dt {f.dt:g} s = {x.size * f.dt:.6g} s")
    if f.uncertainty < 0.0:
        return Rejection(OUT_OF_RANGE, "uncertainty", f.uncertainty, "must be >= 0 m")
    if np.any(v < 0.0):
        i = int(np.argmax(v < 0.0))
        return Rejection(OUT_OF_RANGE, f"speed[{i}]", float(v[i]), "negative speed (forward driving only)")
    if np.any(v > lim.max_speed):
        i = int(np.argmax(v > lim.max_speed))
        return Rejection(OUT_OF_RANGE, f"speed[{i}]", float(v[i]),
                         f"> plan_max_speed {lim.max_speed:g} m/s")
    with np.errstate(over="ignore", invalid="ignore"):  # huge finite steps overflow to inf: rejected
        steps = np.hypot(np.diff(x, prepend=0.0), np.diff(y, prepend=0.0))
    reach = lim.max_speed * f.dt + STEP_SLACK
    if not np.all(steps <= reach):
        i = int(np.argmax(~(steps <= reach)))
        return Rejection(IMPLAUSIBLE, f"x/y[{i}]", f"({x[i]:.6g}, {y[i]:.6g})",
                         f"{float(steps[i]):.3g} m from the previous waypoint; at most {reach:.3g} m "
                         f"is reachable in dt {f.dt:g} s at plan_max_speed")
    return check_plan(x, y, v, f.dt, lim.plan)


def trajectory_error(traj: PlannedTrajectory) -> str | None:
    """Why the core trajectory ``traj`` must not be followed, or None if it is usable: the content
    rules of :func:`check_trajectory` with the default limits, in ``traj``'s own frame."""
    limits = TrajectoryLimits(frame_id=traj.frame_id)
    bad = check_trajectory(TrajectoryFields.from_trajectory(traj), limits)
    return None if bad is None else str(bad)
