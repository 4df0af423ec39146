"""Seeded road generator: straights, clothoid transitions and arcs, with obstacles and stop lines.

A road is its ego-lane centreline sampled every ``ds`` metres (world ``odom`` frame, REP-103),
with heading and curvature per sample. Lateral offsets ``d`` are measured to the left of the
centreline [m]: the ego lane spans ``|d| <= lane_width / 2``; the opposite lane lies to the left
(``lane_width/2 <= d <= 3*lane_width/2``), separated by a dashed centre marking.

The heading is kept within ``+-max_heading`` of the start heading, so x grows monotonically and
a road never crosses itself (projection onto it is then unambiguous, and rendering simple).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class RoadConfig:
    """Road generation parameters (lengths in m, curvature in 1/m)."""

    length: float = 400.0
    ds: float = 0.5                      # centreline sample spacing
    lane_width: float = 3.5
    max_curvature: float = 0.1           # tightest arc: radius 10 m
    start_straight: float = 30.0         # straight run at the start (clean episode starts)
    max_heading: float = 1.35            # [rad] |heading| bound (keeps x monotonic, no self-crossing)
    obstacles: tuple[int, int] = (0, 2)  # min, max number of static obstacles in the ego lane
    stop_lines: tuple[int, int] = (0, 2)  # min, max number of stop lines
    event_spacing: float = 60.0          # minimum distance between obstacles / stop lines
    end_margin: float = 90.0             # no events in the last metres (episode ends before)

    def __post_init__(self) -> None:
        if self.length < self.start_straight + self.end_margin + 20.0:
            raise ValueError(f"RoadConfig.length {self.length} m too short for its start/end margins")
        if not 0.0 < self.max_curvature <= 0.2:
            raise ValueError(f"RoadConfig.max_curvature must be in (0, 0.2] 1/m, got {self.max_curvature}")
        if self.ds <= 0.0 or self.lane_width <= 0.0:
            raise ValueError("RoadConfig.ds and lane_width must be > 0")


@dataclass(frozen=True)
class Obstacle:
    """A static box centred on the ego lane at arc length ``s`` [m]; sizes [m]; RGB colour."""

    s: float
    length: float = 1.2
    width: float = 1.6
    height: float = 1.2
    d: float = 0.0
    color: tuple[int, int, int] = (200, 90, 40)


@dataclass(frozen=True)
class Projection:
    """A point expressed in road coordinates."""

    s: float        # [m] arc length of the nearest centreline point
    d: float        # [m] signed lateral offset (left positive)
    heading: float  # [rad] road heading at s
    curvature: float  # [1/m] road curvature at s
    index: int      # sample index (hint for the next projection)


@dataclass
class Road:
    """Sampled centreline plus the static scene (obstacles, stop lines)."""

    s: FloatArray            # (N,) [m]
    xy: FloatArray           # (N, 2) [m] world
    heading: FloatArray      # (N,) [rad]
    curvature: FloatArray    # (N,) [1/m]
    lane_width: float
    obstacles: list[Obstacle] = field(default_factory=list)
    stop_lines: list[float] = field(default_factory=list)  # [m] arc lengths

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def curvature_at(self, s: float | FloatArray) -> FloatArray:
        return np.asarray(np.interp(s, self.s, self.curvature))

    def heading_at(self, s: float | FloatArray) -> FloatArray:
        return np.asarray(np.interp(s, self.s, np.unwrap(self.heading)))

    def points_at(self, s: float | FloatArray, d: float | FloatArray = 0.0) -> FloatArray:
        """World points ``(..., 2)`` at arc length ``s`` and lateral offset ``d`` [m]."""
        s = np.asarray(s, dtype=np.float64)
        x = np.interp(s, self.s, self.xy[:, 0])
        y = np.interp(s, self.s, self.xy[:, 1])
        h = np.interp(s, self.s, self.heading)
        d = np.asarray(d, dtype=np.float64)
        return np.stack((x - np.sin(h) * d, y + np.cos(h) * d), axis=-1)

    def project(self, x: float, y: float, hint: int | None = None) -> Projection:
        """Nearest centreline point to world ``(x, y)``.

        With ``hint`` (the previous sample index) the search walks locally from there: a few
        microseconds per call, which the 100 Hz physics loop needs. Without it, all samples.
        """
        if hint is None:
            hint = int(np.argmin(np.sum((self.xy - (x, y)) ** 2, axis=1)))
        xs, ys = self._x, self._y
        n = len(xs)
        i = min(max(int(hint), 0), n - 1)

        def dist2(k: int) -> float:
            return (xs[k] - x) ** 2 + (ys[k] - y) ** 2

        best = dist2(i)
        while i + 1 < n and dist2(i + 1) < best:
            i += 1
            best = dist2(i)
        while i > 0 and dist2(i - 1) < best:
            i -= 1
            best = dist2(i)
        # project onto the segment before and after the nearest vertex; keep the closer
        result = None
        for a in (i - 1, i):
            if a < 0 or a + 1 >= n:
                continue
            abx, aby = xs[a + 1] - xs[a], ys[a + 1] - ys[a]
            t = ((x - xs[a]) * abx + (y - ys[a]) * aby) / max(abx * abx + aby * aby, 1e-12)
            t = min(max(t, 0.0), 1.0)
            cx, cy = xs[a] + t * abx, ys[a] + t * aby
            d2 = (x - cx) ** 2 + (y - cy) ** 2
            if result is None or d2 < result[0]:
                result = (d2, a, t, cx, cy)
        assert result is not None
        _, a, t, cx, cy = result
        s = self._s[a] + t * (self._s[a + 1] - self._s[a])
        h0, h1 = self._h[a], self._h[a + 1]
        h = h0 + t * (float(_wrap(h1 - h0)))
        d = -math.sin(h) * (x - cx) + math.cos(h) * (y - cy)
        kappa = self._k[a] + t * (self._k[a + 1] - self._k[a])
        return Projection(s=s, d=d, heading=h, curvature=kappa, index=a)

    def __post_init__(self) -> None:
        # plain-float copies for the scalar hot path of project()
        self._x: list[float] = self.xy[:, 0].tolist()
        self._y: list[float] = self.xy[:, 1].tolist()
        self._s: list[float] = self.s.tolist()
        self._h: list[float] = self.heading.tolist()
        self._k: list[float] = self.curvature.tolist()


def _wrap(a: float | FloatArray) -> float | FloatArray:
    return (a + np.pi) % (2.0 * np.pi) - np.pi


def curvature_profile(rng: np.random.Generator, cfg: RoadConfig) -> tuple[FloatArray, FloatArray]:
    """Knots ``(s, kappa)`` of a piecewise-linear curvature profile (linear pieces = clothoids)."""
    knots_s, knots_k = [0.0, cfg.start_straight], [0.0, 0.0]
    heading = 0.0
    s = cfg.start_straight
    while s < cfg.length:
        if rng.random() < 0.45:  # straight
            s += rng.uniform(10.0, 50.0)
            knots_s.append(s)
            knots_k.append(0.0)
            continue
        # curve: clothoid in, arc, clothoid out; turn towards the start heading when near the bound
        mag = cfg.max_curvature * rng.uniform(0.15, 1.0) ** 0.7
        sign = rng.choice((-1.0, 1.0))
        if abs(heading) > 0.5 * cfg.max_heading:
            sign = -np.sign(heading)
        kappa = sign * mag
        trans = rng.uniform(5.0, 20.0)
        arc = rng.uniform(5.0, 40.0)
        # heading change = kappa * (arc + trans); keep the final heading within the bound
        room = cfg.max_heading - sign * heading
        arc = float(np.clip(min(arc, room / mag - trans), 0.0, None))
        if arc <= 0.0:
            trans = max(2.0, min(trans, room / mag))
        heading += kappa * (arc + trans)
        knots_s += [s + trans, s + trans + arc, s + 2 * trans + arc]
        knots_k += [kappa, kappa, 0.0]
        s += 2 * trans + arc
    return np.array(knots_s), np.array(knots_k)


def generate_road(seed: int, cfg: RoadConfig | None = None) -> Road:
    """The road of ``seed`` (same seed and config -> identical road), starting at the origin along +x."""
    cfg = cfg or RoadConfig()
    rng = np.random.default_rng([int(seed), 0x52_4F_41_44])  # "ROAD"
    ks, kk = curvature_profile(rng, cfg)
    s = np.arange(0.0, cfg.length + cfg.ds / 2, cfg.ds)
    road = road_from_curvature(s, np.interp(s, ks, kk), cfg.lane_width)
    _place_events(road, rng, cfg)
    return road


def road_from_curvature(s: FloatArray, kappa: FloatArray, lane_width: float = 3.5) -> Road:
    """The centreline of curvature ``kappa`` [1/m] at evenly spaced arc lengths ``s`` [m] (from 0),
    starting at the origin along +x (heading integrated with the trapezoid rule, no events)."""
    ds = float(s[1] - s[0])
    heading = np.concatenate(([0.0], np.cumsum(0.5 * (kappa[1:] + kappa[:-1]) * ds)))
    mid = 0.5 * (heading[1:] + heading[:-1])
    xy = np.zeros((len(s), 2))
    xy[1:, 0] = np.cumsum(np.cos(mid) * ds)
    xy[1:, 1] = np.cumsum(np.sin(mid) * ds)
    return Road(s=s, xy=xy, heading=np.asarray(_wrap(heading)), curvature=np.asarray(kappa, np.float64),
                lane_width=lane_width)


def reference_road(max_curvature: float = 0.1, run_out: float = 30.0, ds: float = 0.05) -> Road:
    """The follower's test track: straight, left curve, S-bend to a right curve, gentle bend,
    straight: 160 m with |kappa| <= ``max_curvature``, then ``run_out`` m straight (plans near the
    track's end stay on a road). Curvature changes follow half-cosine ramps."""
    k = max_curvature
    # (start s, end s, kappa at start, kappa at end); constant where equal
    pieces = [(0, 15, 0, 0), (15, 30, 0, k), (30, 50, k, k), (50, 70, k, -k), (70, 90, -k, -k),
              (90, 102, -k, 0), (102, 115, 0, 0), (115, 130, 0, 0.5 * k), (130, 145, 0.5 * k, 0),
              (145, 160, 0, 0)]
    s = np.arange(0.0, 160.0 + run_out + ds / 2, ds)
    kappa = np.zeros_like(s)
    for a, b, ka, kb in pieces:
        m = (s >= a) & (s < b)
        w = 0.5 - 0.5 * np.cos(np.pi * (s[m] - a) / (b - a))
        kappa[m] = ka + (kb - ka) * w
    return road_from_curvature(s, kappa)


def _place_events(road: Road, rng: np.random.Generator, cfg: RoadConfig) -> None:
    """Obstacles and stop lines at distinct positions, never in a sharp curve (they must be seen)."""
    n_obs = int(rng.integers(cfg.obstacles[0], cfg.obstacles[1] + 1))
    n_stop = int(rng.integers(cfg.stop_lines[0], cfg.stop_lines[1] + 1))
    lo, hi = cfg.start_straight + 40.0, road.length - cfg.end_margin
    taken: list[float] = []
    kinds = ["obstacle"] * n_obs + ["stop"] * n_stop
    rng.shuffle(kinds)
    for kind in kinds:
        for _ in range(50):
            s = float(rng.uniform(lo, hi)) if hi > lo else lo
            window = (road.s > s - 30.0) & (road.s < s + 5.0)
            if np.max(np.abs(road.curvature[window]), initial=0.0) > 0.03:
                continue
            if all(abs(s - t) >= cfg.event_spacing for t in taken):
                break
        else:
            continue
        taken.append(s)
        if kind == "stop":
            road.stop_lines.append(s)
        else:
            shade = rng.uniform(0.6, 1.0)
            color = tuple(int(c * shade) for c in ((200, 90, 40), (40, 60, 170), (180, 170, 40))[
                int(rng.integers(0, 3))])
            road.obstacles.append(Obstacle(s=s, length=float(rng.uniform(0.8, 2.0)),
                                           width=float(rng.uniform(1.0, 1.8)),
                                           height=float(rng.uniform(0.8, 1.6)),
                                           color=color))  # type: ignore[arg-type]
    road.stop_lines.sort()
    road.obstacles.sort(key=lambda o: o.s)
