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
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

STANDSTILL_MPS = 0.1  # [m/s] below this the car stands still (the world's stop rule uses it too)


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

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


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
