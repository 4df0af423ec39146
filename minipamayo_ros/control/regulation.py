"""Small pure functions of the pure-pursuit law and its limits (each unit-tested on its own).

In the manner of Nav2 RPP's ``regulation_functions``: no state, SI units, REP-103 signs
(positive curvature / steering = turning left).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def lookahead_distance(speed: float, lookahead_time: float, min_lookahead: float,
                       max_lookahead: float) -> float:
    """[m] speed-scaled lookahead ``lookahead_time * |speed|`` clamped to [min, max]."""
    return min(max(lookahead_time * abs(speed), min_lookahead), max_lookahead)


def pursuit_curvature(x: float, y: float) -> float:
    """[1/m] curvature of the arc from the rear axle (origin, heading +x) through ``(x, y)``.

    ``kappa = 2 y / L^2`` with ``L`` the distance to the point; 0 for a point at the origin.
    """
    d2 = x * x + y * y
    return 0.0 if d2 < 1e-12 else 2.0 * y / d2


def steering_from_curvature(curvature: float, wheelbase: float) -> float:
    """[rad] Ackermann (bicycle) front-wheel angle ``atan(wheelbase * kappa)``."""
    return math.atan(wheelbase * curvature)


def curvature_from_steering(steering: float, wheelbase: float) -> float:
    """[1/m] path curvature ``tan(delta) / wheelbase`` of a front-wheel angle [rad]."""
    return math.tan(steering) / wheelbase


def clamp(value: float, limit: float) -> float:
    """``value`` clamped to [-limit, limit]."""
    return min(max(value, -limit), limit)


def rate_limit(target: float, previous: float, max_rate: float, dt: float) -> float:
    """``target`` moved towards from ``previous`` by at most ``max_rate * dt``."""
    step = max_rate * max(dt, 0.0)
    return min(max(target, previous - step), previous + step)


def curvature_speed_limit(curvature: float, max_lateral_accel: float) -> float:
    """[m/s] highest speed on ``curvature`` with lateral acceleration <= ``max_lateral_accel``.

    ``sqrt(a / |kappa|)``; infinite on a straight line.
    """
    k = abs(curvature)
    return math.inf if k < 1e-9 else math.sqrt(max_lateral_accel / k)


def is_planned_stop(speeds: Sequence[float], threshold: float) -> bool:
    """True when every remaining planned speed [m/s] is below ``threshold`` [m/s] (> 0).

    A learned planner never outputs exactly 0 m/s, and no vehicle tracks a 0.1 m/s crawl: such a
    plan means "stop here". Commanding its crawl instead leaves the car rolling where it should
    stand (stop lines, a blocked lane). ``threshold <= 0`` disables the rule.
    """
    return threshold > 0.0 and len(speeds) > 0 and max(speeds) < threshold


def accel_limited_speed(target: float, previous: float, max_accel: float, max_decel: float,
                        dt: float) -> float:
    """[m/s] ``target`` reached from ``previous`` with acceleration in [-max_decel, max_accel]."""
    dt = max(dt, 0.0)
    return min(max(target, previous - max_decel * dt), previous + max_accel * dt)


def stop_speed(previous: float, stop_decel: float, dt: float) -> float:
    """[m/s] one step of the controlled stop: ``previous`` lowered by ``stop_decel * dt``, >= 0."""
    return max(0.0, previous - stop_decel * max(dt, 0.0))
