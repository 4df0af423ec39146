"""Is a plan self-consistent and physically possible? One small function per property (no ROS).

Like Autoware's planning_validator (``utils.cpp``: curvature from three points a distance apart,
relative angle, lateral / longitudinal acceleration), each property is measured by one function
that returns the worst value and where it is, and judged by one ``check_*`` function that returns
a :class:`~minipamayo_ros.safety.rejection.Rejection` naming the check (its ``kind``), the
waypoint, the value and the limit. :func:`check_plan` runs them all; it is part of
:func:`minipamayo_ros.safety.trajectory_input.check_trajectory`, i.e. of the follower's input check
*and* of the policy's output check, with the limits both nodes declare once
(:class:`~minipamayo_ros.safety.input_limits.InputLimitParams`).

A plan is ``x, y`` [m] (body frame at the stamp, waypoint ``i`` reached at ``(i + 1) * dt``) and
``speed`` [m/s], already shape-checked, finite and non-negative. The path starts at the vehicle
(the origin) with the first planned speed. Positions of a learned planner are noisy (a few cm),
so geometric properties are measured on the path thinned to points at least
:data:`MIN_INTERVAL` apart, curvature over chords of :data:`CURVATURE_DISTANCE`, and distances
cumulatively rather than per 0.1 s step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from minipamayo_ros.safety.rejection import Rejection

FloatArray = NDArray[np.float64]

#: rejection kinds (diagnostics counter keys ``rejected.<kind>``), one per check
SPEED_MISMATCH = "speed_mismatch"      # speeds disagree with the waypoint spacing
BACKWARDS = "backwards"                # the path does not progress in the direction of travel
CURVATURE = "curvature"                # sharper than the steering allows
LATERAL_ACCEL = "lateral_accel"        # speed^2 * curvature
LONGITUDINAL_ACCEL = "longitudinal_accel"
JERK = "jerk"
PLAN_CHECKS = (SPEED_MISMATCH, BACKWARDS, CURVATURE, LATERAL_ACCEL, LONGITUDINAL_ACCEL, JERK)

#: [m] geometric checks skip points closer than this to the previous kept one (position noise)
MIN_INTERVAL = 0.3
#: [m] curvature from three points at least this far apart along the path (as Autoware's default)
CURVATURE_DISTANCE = 1.0
#: [m] a plan that moves less than this over its horizon is "standing": no direction check
MOVING_DISTANCE = 0.5
#: relative part of the speed / spacing tolerance (of the distance the speeds cover)
DISTANCE_TOLERANCE_REL = 0.1
#: [rad] largest heading change between thinned segments: more turns back against the travel
MAX_TURN = math.pi / 2.0


@dataclass(frozen=True)
class PlanLimits:
    """What a plan may ask of the vehicle (SI units); built from the shared parameters by
    :meth:`~minipamayo_ros.safety.input_limits.InputLimitParams.trajectory_limits`."""

    max_curvature: float = math.tan(0.5) / 2.7  # [1/m] tan(max_steer) / wheelbase
    max_lateral_accel: float = 6.0              # [m/s^2]
    max_accel: float = 4.0                      # [m/s^2]
    max_decel: float = 8.0                      # [m/s^2] (positive)
    max_jerk: float = 100.0                     # [m/s^3]
    distance_tolerance: float = 0.5             # [m] path vs integrated speed, absolute part
    distance_tolerance_rel: float = DISTANCE_TOLERANCE_REL
    max_turn: float = MAX_TURN                  # [rad] heading change between thinned segments


# --- measurements ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """A plan as the checks see it: waypoints ``x, y`` [m], ``speed`` [m/s], ``dt`` [s], and its
    path thinned once (Autoware ``resampleTrajectory``, no interpolation): the vehicle (origin)
    and each waypoint more than :data:`MIN_INTERVAL` from the last point kept."""

    x: FloatArray
    y: FloatArray
    speed: FloatArray
    dt: float
    points: FloatArray   # (K, 2) [m] the thinned path, the vehicle first
    index: NDArray[np.intp]  # (K,) waypoint index of each thinned point (-1 = the vehicle)
    arc: FloatArray      # (K,) [m] length of the thinned path up to each of its points

    @staticmethod
    def of(x: FloatArray, y: FloatArray, speed: FloatArray, dt: float,
           min_interval: float = MIN_INTERVAL) -> Plan:
        keep, kx, ky = [-1], 0.0, 0.0
        for i, (px, py) in enumerate(zip(x.tolist(), y.tolist(), strict=True)):  # 20 points: plain floats
            if math.hypot(px - kx, py - ky) > min_interval:
                keep.append(i)
                kx, ky = px, py
        index = np.asarray(keep, dtype=np.intp)
        points = np.zeros((len(keep), 2))
        points[1:, 0], points[1:, 1] = x[index[1:]], y[index[1:]]
        arc = np.concatenate(([0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))))
        return Plan(x, y, speed, dt, points, index, arc)


def planned_distance(speed: FloatArray, dt: float) -> FloatArray:
    """[m] distance the speeds cover until each waypoint (trapezoid; speed at t = 0 := speed[0])."""
    v = np.concatenate(([speed[0]], speed))
    return np.cumsum(0.5 * (v[:-1] + v[1:]) * dt)


def path_length(p: Plan) -> FloatArray:
    """[m] length of the path from the vehicle to each waypoint: along the thinned path to its
    last point at or before the waypoint, then straight on, so that centimetre noise (or a jitter
    about one spot) adds no length."""
    kept = np.searchsorted(p.index, np.arange(len(p.x)), side="right") - 1  # last kept <= i
    return p.arc[kept] + np.hypot(p.x - p.points[kept, 0], p.y - p.points[kept, 1])


def turn_angles(p: Plan) -> FloatArray:
    """[rad] heading change at each thinned segment (the first relative to the vehicle's heading,
    x forward); segment ``k`` ends at waypoint ``p.index[k + 1]``."""
    seg = np.diff(p.points, axis=0)
    heading = np.arctan2(seg[:, 1], seg[:, 0])
    turn = np.diff(np.concatenate(([0.0], heading)))
    return np.abs((turn + np.pi) % (2.0 * np.pi) - np.pi)


def curvatures(p: Plan, distance: float = CURVATURE_DISTANCE) -> tuple[FloatArray, NDArray[np.intp]]:
    """[1/m] unsigned curvature at thinned waypoints from the circle through each and the nearest
    waypoints at least ``distance`` before and after it along the path (Autoware
    ``calcCurvature``); points without such neighbours on both sides are skipped. The vehicle is
    not one of the points: a plan laid a little beside the vehicle (a learned planner's offset) is
    as curved as its waypoints; how it starts is for the direction and spacing checks. Returns
    values and waypoint indices."""
    pts, index, arc = p.points[1:], p.index[1:], p.arc[1:]
    k = np.arange(len(arc))
    before = np.searchsorted(arc, arc - distance, side="right") - 1   # last point >= distance back
    after = np.searchsorted(arc, arc + distance, side="left")         # first point >= distance on
    ok = (before >= 0) & (after < len(arc))
    a, b, c = pts[before[ok]], pts[k[ok]], pts[after[ok]]
    ab, bc, ca = (np.hypot(*(u - w).T) for u, w in ((a, b), (b, c), (c, a)))
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    denom = ab * bc * ca
    kappa = np.divide(2.0 * np.abs(cross), denom, out=np.zeros_like(denom), where=denom > 0.0)
    return kappa, index[k[ok]]


def accelerations(speed: FloatArray, dt: float) -> FloatArray:
    """[m/s^2] planned acceleration between consecutive waypoints."""
    return np.diff(speed) / dt


# --- checks ------------------------------------------------------------------------------------


def check_speed_spacing(p: Plan, lim: PlanLimits) -> Rejection | None:
    """The waypoints are as far along as the speeds say: up to each waypoint, the path length
    (:func:`path_length`) is at least, and the straight distance from the vehicle at most, the
    distance the planned speeds cover, within ``distance_tolerance + distance_tolerance_rel * that
    distance`` (the chord is shorter than the path on a curve: both bounds are one-sided)."""
    planned = planned_distance(p.speed, p.dt)
    path = path_length(p)
    chord = np.hypot(p.x, p.y)
    tol = lim.distance_tolerance + lim.distance_tolerance_rel * planned
    short, far = path < planned - tol, chord > planned + tol
    if not (short.any() or far.any()):
        return None
    i = int(np.argmax(short | far))
    if short[i]:
        return Rejection(SPEED_MISMATCH, f"x/y[{i}]", f"path length {path[i]:.3g} m",
                         f"the speeds cover {planned[i]:.3g} m by then (tolerance {tol[i]:.3g} m)")
    return Rejection(SPEED_MISMATCH, f"x/y[{i}]", f"{chord[i]:.3g} m from the vehicle",
                     f"the speeds cover only {planned[i]:.3g} m by then (tolerance {tol[i]:.3g} m)")


def check_direction(p: Plan, lim: PlanLimits) -> Rejection | None:
    """A moving plan progresses in its direction of travel: the path starts ahead of the vehicle
    and no thinned segment turns by more than ``max_turn`` from the previous one (a U-turn or a
    zigzag within centimetres is not a path a car drives)."""
    if planned_distance(p.speed, p.dt)[-1] < MOVING_DISTANCE:
        return None
    turn = turn_angles(p)
    if turn.size == 0 or float(turn.max()) <= lim.max_turn:
        return None
    k = int(np.argmax(turn))
    deg, limit, where = math.degrees(float(turn[k])), math.degrees(lim.max_turn), int(p.index[k + 1])
    if k == 0:
        return Rejection(BACKWARDS, f"x/y[{where}]", f"heading {deg:.0f} deg",
                         f"the path leaves the vehicle more than {limit:.0f} deg off its heading while "
                         "the speeds say to drive on")
    return Rejection(BACKWARDS, f"x/y[{where}]", f"turn {deg:.0f} deg",
                     f"the path turns back by more than {limit:.0f} deg while the speeds say to drive on")


def check_curvature(p: Plan, lim: PlanLimits) -> Rejection | None:
    """Curvature within the steering limit and ``speed^2 * curvature`` within the lateral
    acceleration limit."""
    kappa, where = curvatures(p)
    if kappa.size == 0:
        return None
    k = int(np.argmax(kappa))
    if kappa[k] > lim.max_curvature:
        return Rejection(CURVATURE, f"x/y[{where[k]}]", f"{kappa[k]:.3g} 1/m",
                         f"> {lim.max_curvature:.3g} 1/m (tan(max_steer) / wheelbase)")
    v = p.speed[where]
    lat = v * v * kappa
    k = int(np.argmax(lat))
    if lat[k] > lim.max_lateral_accel:
        return Rejection(LATERAL_ACCEL, f"x/y[{where[k]}]", f"{lat[k]:.3g} m/s^2",
                         f"speed {v[k]:.3g} m/s on curvature {kappa[k]:.3g} 1/m; > "
                         f"plan_max_lateral_accel {lim.max_lateral_accel:g} m/s^2")
    return None


def check_acceleration(p: Plan, lim: PlanLimits) -> Rejection | None:
    """Planned acceleration within ``[-max_decel, max_accel]`` and its rate within ``max_jerk``."""
    acc = accelerations(p.speed, p.dt)
    over = (acc > lim.max_accel) | (-acc > lim.max_decel)
    if over.any():
        i = int(np.argmax(over))
        return Rejection(LONGITUDINAL_ACCEL, f"speed[{i + 1}]", f"{acc[i]:.3g} m/s^2",
                         f"from speed[{i}] = {p.speed[i]:.3g} to {p.speed[i + 1]:.3g} m/s in {p.dt:g} s; "
                         f"limits -{lim.max_decel:g} / +{lim.max_accel:g} m/s^2")
    jerk = np.diff(acc) / p.dt
    if jerk.size == 0:
        return None
    i = int(np.argmax(np.abs(jerk)))
    if abs(jerk[i]) > lim.max_jerk:
        return Rejection(JERK, f"speed[{i + 2}]", f"{jerk[i]:.3g} m/s^3",
                         f"acceleration {acc[i]:.3g} -> {acc[i + 1]:.3g} m/s^2 in {p.dt:g} s; "
                         f"> plan_max_jerk {lim.max_jerk:g} m/s^3")
    return None


def limit_use(p: Plan, lim: PlanLimits) -> dict[str, float]:
    """How close the plan comes to each check's limit: the worst value / the limit per check kind
    (> 1 fails; for ``speed_mismatch`` the worst disagreement / its tolerance). For reports of
    the margins a planner keeps (``evaluation``), not for deciding: that is :func:`check_plan`."""
    planned = planned_distance(p.speed, p.dt)
    tol = lim.distance_tolerance + lim.distance_tolerance_rel * planned
    mismatch = np.maximum(planned - path_length(p), np.hypot(p.x, p.y) - planned) / tol
    moving = planned[-1] >= MOVING_DISTANCE
    turn = turn_angles(p) if moving else np.zeros(0)
    kappa, where = curvatures(p)
    acc = accelerations(p.speed, p.dt)
    jerk = np.diff(acc) / p.dt

    def worst(values: FloatArray) -> float:
        return float(values.max()) if values.size else 0.0

    return {
        SPEED_MISMATCH: worst(mismatch),
        BACKWARDS: worst(turn) / lim.max_turn,
        CURVATURE: worst(kappa) / lim.max_curvature,
        LATERAL_ACCEL: worst(p.speed[where] ** 2 * kappa) / lim.max_lateral_accel,
        LONGITUDINAL_ACCEL: max(worst(acc) / lim.max_accel, worst(-acc) / lim.max_decel),
        JERK: worst(np.abs(jerk)) / lim.max_jerk,
    }


#: every check, in the order they run
CHECKS = (check_speed_spacing, check_direction, check_curvature, check_acceleration)


def check_plan(x: FloatArray, y: FloatArray, speed: FloatArray, dt: float,
               lim: PlanLimits) -> Rejection | None:
    """The first check the plan fails, or None (arrays finite, equal lengths, speeds >= 0)."""
    plan = Plan.of(x, y, speed, dt)
    for check in CHECKS:
        bad = check(plan, lim)
        if bad is not None:
            return bad
    return None
