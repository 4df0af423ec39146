"""Closed-loop driving quality from the simulator's ground truth (ROS-free).

The world feeds one :meth:`MetricsTracker.update` per physics step; :meth:`MetricsTracker.summary`
returns the episode figures. Definitions:

* cross-track error: lateral offset [m] of base_link (rear axle) from the ego-lane centre;
* lane departure: a footprint corner beyond a lane line (``|d| > lane_width / 2``); counted once
  per excursion, with the total time spent outside;
* collision: footprint overlapping an obstacle; counted once per contact;
* stop-line violation: the front bumper crossing a stop line without a full stop before it;
* longest standstill: the longest uninterrupted time below ``STANDSTILL_MPS`` [s] (a car waiting
  for ever at a stop line, a deadlock between policy and follower, shows here; the expert stands
  0.8 s at a stop line and 3 s behind an obstacle);
* comfort: max |lateral acceleration| = |speed * yaw rate| [m/s^2]; longitudinal jerk [m/s^3]
  from speed sampled every ``jerk_dt`` (0.1 s, so integration steps do not show as jerk).

Per-run facts for scorers (traffic world, ``docs/traffic-world.md``): every contact with a road user
or obstacle is an :class:`Incident` (who, at fault or not and why: ``agents.fault``);
``at_fault_collisions`` counts those that were the ego's fault; ``red_light_violations``: the front
bumper crossing a stop line while its light is red; ``min_ttc_s``: the smallest time-to-collision
(agents ahead of the rear axle, capped at ``TTC_HORIZON``, sampled at 10 Hz while moving): along
the road for road users on it (:func:`route_time_to_collision`), at constant world velocity for
the others (:func:`time_to_collision`); ``longest_stall_s``: the longest standstill while the
expert would drive (sampled at 10 Hz). :func:`clean_checks` is the clean-run test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

STANDSTILL_MPS = 0.1  # [m/s] below this the car stands still (the world's stop rule uses it too)
TTC_HORIZON = 5.0     # [s] time-to-collision is reported up to this (larger = no conflict)
TTC_STEP = 0.1        # [s] extrapolation step of the time-to-collision
MAX_STALL_S = 10.0    # [s] a standstill longer than this while the expert would drive is a stall


@dataclass(frozen=True)
class EpisodeMetrics:
    duration_s: float
    distance_m: float
    mean_speed_mps: float
    cross_track_rms_m: float
    cross_track_max_m: float
    lane_departures: int
    lane_departure_time_s: float
    collisions: int
    stop_line_violations: int
    stops_completed: int
    max_lateral_accel_mps2: float
    max_long_jerk_mps3: float
    rms_long_jerk_mps3: float
    longest_standstill_s: float
    at_fault_collisions: int = 0
    red_light_violations: int = 0
    red_lights_passed: int = 0         # stop lines of signals crossed on green / amber
    min_ttc_s: float = TTC_HORIZON
    longest_stall_s: float = 0.0       # standstill while the expert would drive

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class Incident:
    """One contact of the ego with a road user or obstacle (or another rule event)."""

    time: float              # [s] episode time
    kind: str                # "collision", "red_light"
    agent_id: int = -1       # -1: a classic static obstacle / no agent
    agent_kind: str = ""     # "vehicle", "pedestrian", "obstacle"
    agent_role: str = ""     # "lead", "oncoming", "cut_in", "parked", "cross", "pedestrian", "obstacle"
    at_fault: bool = True
    reason: str = ""         # agents.fault reason ("ego", "ego_standing", "rear_ended", ...)
    ego_speed: float = 0.0   # [m/s]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def clean_checks(m: Mapping[str, float | int | None]) -> dict[str, bool]:
    """The clean-run test of one run's metrics (``EpisodeMetrics.as_dict``): every one must hold."""
    return {
        "no_at_fault_collision": (m.get("at_fault_collisions") or 0) == 0,
        "no_lane_departure": (m.get("lane_departures") or 0) == 0,
        "no_stop_line_violation": (m.get("stop_line_violations") or 0) == 0,
        "no_red_light_violation": (m.get("red_light_violations") or 0) == 0,
        "no_stall": (m.get("longest_stall_s") or 0.0) <= MAX_STALL_S,
    }


class MetricsTracker:
    """Accumulates ground-truth metrics over an episode."""

    def __init__(self, jerk_dt: float = 0.1) -> None:
        self.jerk_dt = jerk_dt
        self.reset()

    def reset(self) -> None:
        self.time = 0.0
        self.distance = 0.0
        self._cte_sq = 0.0
        self._cte_time = 0.0
        self.cte_max = 0.0
        self.lane_departures = 0
        self.lane_departure_time = 0.0
        self.collisions = 0
        self.stop_line_violations = 0
        self.stops_completed = 0
        self.max_lat_accel = 0.0
        self._departed = False
        self._colliding = False
        self._next_sample = 0.0
        self._speeds: list[float] = []
        self._jerk_sq = 0.0
        self._jerk_n = 0
        self.max_jerk = 0.0
        self._standstill = 0.0
        self.longest_standstill = 0.0
        self.incidents: list[Incident] = []
        self.at_fault_collisions = 0
        self.red_light_violations = 0
        self.red_lights_passed = 0
        self.min_ttc = TTC_HORIZON
        self._stall = 0.0
        self.longest_stall = 0.0

    def update(self, dt: float, *, cross_track: float, speed: float, yaw_rate: float,
               departed: bool, colliding: bool) -> None:
        """One physics step of ``dt`` [s] ending in the given state."""
        self.time += dt
        self.distance += speed * dt
        self._cte_sq += cross_track**2 * dt
        self._cte_time += dt
        self.cte_max = max(self.cte_max, abs(cross_track))
        if departed and not self._departed:
            self.lane_departures += 1
        if departed:
            self.lane_departure_time += dt
        self._departed = departed
        if colliding and not self._colliding:
            self.collisions += 1
        self._colliding = colliding
        self.max_lat_accel = max(self.max_lat_accel, abs(speed * yaw_rate))
        self._standstill = self._standstill + dt if speed < STANDSTILL_MPS else 0.0
        self.longest_standstill = max(self.longest_standstill, self._standstill)
        if self.time + 1e-9 >= self._next_sample:
            self._next_sample += self.jerk_dt
            self._speeds = (self._speeds + [speed])[-3:]
            if len(self._speeds) == 3:
                v0, v1, v2 = self._speeds
                jerk = (v2 - 2 * v1 + v0) / self.jerk_dt**2
                self.max_jerk = max(self.max_jerk, abs(jerk))
                self._jerk_sq += jerk**2
                self._jerk_n += 1

    def stop_line_passed(self, stopped_before: bool) -> None:
        if stopped_before:
            self.stops_completed += 1
        else:
            self.stop_line_violations += 1

    def contact(self, incident: Incident, count: bool = True) -> None:
        """A new contact (``count``: also count it in ``collisions``; the classic world counts its
        contacts through :meth:`update`)."""
        self.incidents.append(incident)
        if count:
            self.collisions += 1
        if incident.at_fault:
            self.at_fault_collisions += 1

    def light_passed(self, time: float, red: bool, speed: float) -> None:
        if red:
            self.red_light_violations += 1
            self.incidents.append(Incident(time, "red_light", ego_speed=speed))
        else:
            self.red_lights_passed += 1

    def ttc(self, value: float) -> None:
        self.min_ttc = min(self.min_ttc, value)

    def stall_sample(self, dt: float, standing: bool, expert_would_drive: bool) -> None:
        """Every ``dt`` [s]: a standstill counts as a stall while the expert would drive."""
        self._stall = self._stall + dt if standing and expert_would_drive else 0.0
        self.longest_stall = max(self.longest_stall, self._stall)

    def summary(self) -> EpisodeMetrics:
        t = max(self.time, 1e-9)
        return EpisodeMetrics(
            duration_s=self.time,
            distance_m=self.distance,
            mean_speed_mps=self.distance / t,
            cross_track_rms_m=math.sqrt(self._cte_sq / max(self._cte_time, 1e-9)),
            cross_track_max_m=self.cte_max,
            lane_departures=self.lane_departures,
            lane_departure_time_s=self.lane_departure_time,
            collisions=self.collisions,
            stop_line_violations=self.stop_line_violations,
            stops_completed=self.stops_completed,
            max_lateral_accel_mps2=self.max_lat_accel,
            max_long_jerk_mps3=self.max_jerk,
            rms_long_jerk_mps3=math.sqrt(self._jerk_sq / self._jerk_n) if self._jerk_n else 0.0,
            longest_standstill_s=self.longest_standstill,
            at_fault_collisions=self.at_fault_collisions,
            red_light_violations=self.red_light_violations,
            red_lights_passed=self.red_lights_passed,
            min_ttc_s=self.min_ttc,
            longest_stall_s=self.longest_stall,
        )


def corner_offsets(d: float, heading_error: float, curvature: float,
                   corners: list[tuple[float, float]]) -> list[float]:
    """Lateral offsets [m] of footprint corners from the lane centre (small-angle road model).

    ``corners`` are base_link coordinates; the road ahead bends by ``curvature * x^2 / 2``.
    """
    s, c = math.sin(heading_error), math.cos(heading_error)
    out = []
    for x, y in corners:
        along = x * c - y * s
        out.append(d + x * s + y * c - 0.5 * curvature * along * along)
    return out


def rectangles_overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
    """Separating-axis test of two convex quadrilaterals given as 4 corners in order."""
    for poly in (a, b):
        for i in range(4):
            x1, y1 = poly[i]
            x2, y2 = poly[(i + 1) % 4]
            nx, ny = y2 - y1, x1 - x2
            pa = [nx * x + ny * y for x, y in a]
            pb = [nx * x + ny * y for x, y in b]
            if max(pa) < min(pb) or max(pb) < min(pa):
                return False
    return True


def time_to_collision(ego: tuple[float, float, float, float, float, float],
                      others: Sequence[tuple[float, float, float, float, float, float]],
                      horizon: float = TTC_HORIZON, step: float = TTC_STEP) -> float:
    """[s] first time the ego's box overlaps another's, all moving at constant velocity.

    Boxes: ``(x, y, yaw, speed, length, width)`` (centre, world frame). Returns ``horizon`` when
    no overlap happens within it (0.0 when they overlap now). Vectorised separating-axis test
    over all boxes and times.
    """
    if not others:
        return horizon
    t = np.arange(0.0, horizon + 1e-9, step)                          # (T,)
    b = np.asarray(others, dtype=np.float64)                         # (N, 6)
    ex, ey, eyaw, ev, el, ew = ego
    ec, es = math.cos(eyaw), math.sin(eyaw)
    # centres over time
    ecx, ecy = ex + ec * ev * t, ey + es * ev * t                   # (T,)
    oc, osn = np.cos(b[:, 2]), np.sin(b[:, 2])                       # (N,)
    ocx = b[:, 0:1] + (oc * b[:, 3])[:, None] * t                    # (N, T)
    ocy = b[:, 1:2] + (osn * b[:, 3])[:, None] * t
    dx, dy = ocx - ecx, ocy - ecy                                     # (N, T)
    # separating axes: the ego's two and the other's two; the boxes overlap when no axis separates
    sep = np.zeros(dx.shape, dtype=bool)
    ohl, ohw = b[:, 4:5] / 2, b[:, 5:6] / 2
    axes: list[tuple[Any, Any, Any, bool]] = [(ec, es, el / 2, True), (-es, ec, ew / 2, True),
                                              (oc[:, None], osn[:, None], ohl, False),
                                              (-osn[:, None], oc[:, None], ohw, False)]
    for ax, ay, own_a, on_ego in axes:
        dist = np.abs(dx * ax + dy * ay)
        if on_ego:   # axis of the ego: the other's extent projected on it
            ca = np.abs(oc * ax + osn * ay)[:, None]
            sa = np.abs(-osn * ax + oc * ay)[:, None]
            reach = own_a + ohl * ca + ohw * sa
        else:        # axis of the other: the ego's extent projected on it
            ca = np.abs(ec * ax + es * ay)
            sa = np.abs(-es * ax + ec * ay)
            reach = own_a + (el / 2) * ca + (ew / 2) * sa
        sep |= dist > reach
    hit = ~sep                                                        # (N, T)
    if not hit.any():
        return horizon
    first = np.argmax(hit, axis=1)[hit.any(axis=1)]
    return float(t[first.min()])


def route_time_to_collision(ego: tuple[float, float, float, float, float, float],
                            others: Sequence[tuple[float, float, float, float, float, float]],
                            horizon: float = TTC_HORIZON, step: float = TTC_STEP) -> float:
    """[s] first time the ego's box overlaps another's when both keep their velocity *along the
    road* (route coordinates: arc length ``s``, lateral offset ``d``).

    Boxes: ``(s, d, v_s, v_d, length, width)`` [m, m, m/s, m/s, m, m], centre. Unlike
    :func:`time_to_collision` a car following its curved lane never seems to leave it (no false
    conflicts with oncoming traffic in curves). Returns ``horizon`` without overlap.
    """
    if not others:
        return horizon
    t = np.arange(0.0, horizon + 1e-9, step)
    b = np.asarray(others, dtype=np.float64)
    es, ed, evs, evd, el, ew = ego
    ds = (b[:, 0:1] + b[:, 2:3] * t) - (es + evs * t)          # (N, T)
    dd = (b[:, 1:2] + b[:, 3:4] * t) - (ed + evd * t)
    hit = (np.abs(ds) < (el + b[:, 4:5]) / 2) & (np.abs(dd) < (ew + b[:, 5:6]) / 2)
    if not hit.any():
        return horizon
    first = np.argmax(hit, axis=1)[hit.any(axis=1)]
    return float(t[first.min()])
