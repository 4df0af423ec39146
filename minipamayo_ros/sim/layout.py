"""The road of a traffic scenario: a route with signalised intersections (straight on or turning),
crosswalks, merge lanes and places for parked vehicles, stop lines and obstacles.

The classic road (``road.generate_road``) is left untouched; this builds its own curvature profile
from its own random stream. Between events the road curves like the classic one (clothoid, arc,
clothoid, ``|kappa| <= spec.road.max_curvature``); at an intersection the route has a straight
approach of ``APPROACH`` m, then either goes straight through the box or turns by 90 deg on an arc
of the drawn radius (curvature up to 0.2 1/m) with 2 m clothoid ramps, then a straight exit of
``EXIT`` m. Turns alternate so that the net turn stays within one quarter turn: the road never
crosses itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from minipamayo_ros.sim.agents.objects import Crosswalk, Intersection, LightCycle, MergeLane, TrafficLayout
from minipamayo_ros.sim.road import Obstacle, Road, road_from_curvature
from minipamayo_ros.sim.scenario import ScenarioSpec

APPROACH = 45.0       # [m] straight before an intersection box
EXIT = 45.0           # [m] straight after it (cross traffic starts there)
TURN_RAMP = 2.0       # [m] clothoid ramps of a turn
CROSSWALK_WIDTH = 3.0  # [m]
STOP_LINE_GAP = 1.0   # [m] stop line -> crosswalk
MERGE_LENGTH = 160.0  # [m] merge lane incl. its taper
START_STRAIGHT = 30.0  # [m]
END_MARGIN = 90.0     # [m] no events in the last metres (the episode ends 85 m before the end)


@dataclass
class PlannedSpot:
    """Free places on the route for the agents that ``sim.traffic`` places (route s [m])."""

    parked: list[float] = field(default_factory=list)
    crossings: list[tuple[float, int | None]] = field(default_factory=list)  # (s, crosswalk id or None)


def _segment_curve(rng: np.random.Generator, max_k: float, heading: float, ref: float,
                   max_heading: float = 1.35) -> tuple[float, float, float]:
    """(kappa, transition, arc) of a random curve keeping |heading - ref| within the bound."""
    mag = max_k * rng.uniform(0.15, 1.0) ** 0.7
    sign = float(rng.choice((-1.0, 1.0)))
    rel = heading - ref
    if abs(rel) > 0.5 * max_heading:
        sign = -math.copysign(1.0, rel)
    trans = float(rng.uniform(5.0, 20.0))
    arc = float(rng.uniform(5.0, 40.0))
    room = max_heading - sign * rel
    arc = max(0.0, min(arc, room / mag - trans))
    if arc <= 0.0:
        trans = max(2.0, min(trans, room / mag))
    return sign * mag, trans, arc


def _turns(rng: np.random.Generator, n: int, spec: ScenarioSpec) -> list[tuple[int, float]]:
    """(turn, radius) per intersection: +1 left, -1 right, 0 straight; net turn within +-1."""
    it = spec.intersections
    assert it is not None
    out: list[tuple[int, float]] = []
    net = 0
    for _ in range(n):
        options = [(0, it.straight), (1, it.left), (-1, it.right)]
        options = [(t, w) for t, w in options if abs(net + t) <= 1 and w > 0.0] or [(0, 1.0)]
        w = np.array([w for _, w in options])
        turn = options[int(rng.choice(len(options), p=w / w.sum()))][0]
        net += turn
        radius = float(rng.uniform(*(it.left_radius if turn > 0 else it.right_radius)))
        out.append((turn, radius))
    return out


@dataclass(frozen=True)
class _Reserved:
    """A stretch of route [lo, hi] a feature needs straight (route s, m)."""

    lo: float
    hi: float
    kind: str
    at: float                 # the feature's own s (intersection: start of the approach)
    turn: int = 0
    radius: float = 0.0


def _turn_length(turn: int, radius: float, lane_width: float) -> float:
    return 2 * lane_width if turn == 0 else (math.pi / 2) * radius + TURN_RAMP


def _reserve(rng: np.random.Generator, taken: list[_Reserved], lo: float, hi: float, before: float,
             after: float, kind: str, **extra: float) -> _Reserved | None:
    """A random non-overlapping stretch [s - before, s + after] with s in [lo, hi]."""
    for _ in range(80):
        if hi <= lo:
            return None
        at = float(rng.uniform(lo, hi))
        r = _Reserved(at - before, at + after, kind, at, **extra)  # type: ignore[arg-type]
        if all(r.hi + 10.0 < t.lo or t.hi + 10.0 < r.lo for t in taken):
            taken.append(r)
            return r
    return None


def traffic_road(seed: int, spec: ScenarioSpec, length: float, lane_width: float = 3.5,
                 ds: float = 0.5) -> tuple[Road, TrafficLayout, PlannedSpot]:
    """The route, its static traffic objects and free spots for ``spec`` (deterministic per seed).

    Features are placed first (each on a straight stretch it reserves), then the curvature
    profile is drawn around them.
    """
    rng = np.random.default_rng([int(seed), 0x54_52_41_46])  # "TRAF"
    lo_all, hi_all = START_STRAIGHT + 20.0, length - END_MARGIN
    taken: list[_Reserved] = []

    def count(rng_range: tuple[int, int]) -> int:
        return int(rng.integers(rng_range[0], rng_range[1] + 1))

    it = spec.intersections
    if it is not None:
        for turn, radius in _turns(rng, count(it.count), spec):
            span = APPROACH + _turn_length(turn, radius, lane_width) + EXIT
            _reserve(rng, taken, lo_all - 20.0, hi_all - span, 0.0, span, "intersection", turn=turn,
                     radius=radius)
    if spec.cut_in is not None:
        for _ in range(count(spec.cut_in.count)):
            _reserve(rng, taken, lo_all + 10.0, hi_all - MERGE_LENGTH, 30.0, MERGE_LENGTH + 10.0, "merge")
    ped = spec.pedestrians
    if ped is not None:
        for _ in range(count(ped.count)):
            r = _reserve(rng, taken, lo_all + 20.0, hi_all, 35.0, 10.0, "crossing")
            if r is not None and rng.random() < ped.crosswalk_fraction:
                taken[-1] = _Reserved(r.lo, r.hi, "crosswalk", r.at)
    if spec.parked is not None:
        for _ in range(count(spec.parked.count)):
            _reserve(rng, taken, lo_all, hi_all, 25.0, 15.0, "parked")
    for kind, n_range in (("stop", spec.road.stop_lines), ("obstacle", spec.road.obstacles)):
        for _ in range(count(n_range)):
            _reserve(rng, taken, lo_all + 15.0, hi_all, 35.0, 10.0, kind)
    taken.sort(key=lambda r: r.lo)
    knots_s, knots_k, spans = _profile(rng, spec, length, lane_width, taken)
    grid = np.arange(0.0, length + ds / 2, ds)
    road = road_from_curvature(grid, np.interp(grid, np.array(knots_s), np.array(knots_k)), lane_width)
    layout, spots = TrafficLayout(), PlannedSpot()
    next_id = 0
    for s_a, s_b, turn in spans:
        ix = _intersection(road, next_id, s_a, s_b, turn, lane_width, _cycle(rng, spec))
        layout.intersections.append(ix)
        if ix.crosswalk is not None:
            layout.crosswalks.append(ix.crosswalk)
        next_id += 1
    for r in taken:
        if r.kind == "merge":
            layout.merge_lanes.append(MergeLane(next_id, r.at, r.at + MERGE_LENGTH))
            next_id += 1
        elif r.kind in ("crossing", "crosswalk"):
            cw_id = None
            if r.kind == "crosswalk":
                layout.crosswalks.append(Crosswalk(next_id, r.at, CROSSWALK_WIDTH))
                cw_id = next_id
                next_id += 1
            spots.crossings.append((r.at, cw_id))
        elif r.kind == "parked":
            spots.parked.append(r.at)
        elif r.kind == "stop":
            road.stop_lines.append(r.at)
        elif r.kind == "obstacle":
            shade = rng.uniform(0.6, 1.0)
            color = tuple(int(c * shade) for c in ((200, 90, 40), (40, 60, 170), (180, 170, 40))[
                int(rng.integers(0, 3))])
            road.obstacles.append(Obstacle(s=r.at, length=float(rng.uniform(0.8, 2.0)),
                                           width=float(rng.uniform(1.0, 1.8)),
                                           height=float(rng.uniform(0.8, 1.6)),
                                           color=color))  # type: ignore[arg-type]
    road.stop_lines.sort()
    road.obstacles.sort(key=lambda o: o.s)
    layout.crosswalks.sort(key=lambda c: c.s)
    return road, layout, spots


def _profile(rng: np.random.Generator, spec: ScenarioSpec, length: float, lane_width: float,
             taken: list[_Reserved]) -> tuple[list[float], list[float], list[tuple[float, float, int]]]:
    """Curvature knots: random curves between the reserved stretches, which stay straight (or
    hold an intersection's turn). Returns knots and the intersections' (s_a, s_b, turn)."""
    knots_s, knots_k = [0.0, START_STRAIGHT], [0.0, 0.0]
    s, heading, ref = START_STRAIGHT, 0.0, 0.0
    spans: list[tuple[float, float, int]] = []
    pending = [r for r in taken]
    while s < length:
        if pending and s >= pending[0].lo - 1e-9:
            r = pending.pop(0)
            if r.kind != "intersection":
                s = max(s, r.hi)
                knots_s.append(s)
                knots_k.append(0.0)
                continue
            s += APPROACH
            knots_s.append(s)
            knots_k.append(0.0)
            s_a = s
            if r.turn == 0:
                s += 2 * lane_width
                knots_s.append(s)
                knots_k.append(0.0)
            else:
                kappa = r.turn / r.radius
                arc = (math.pi / 2) / abs(kappa) - TURN_RAMP
                knots_s += [s + TURN_RAMP, s + TURN_RAMP + arc, s + 2 * TURN_RAMP + arc]
                knots_k += [kappa, kappa, 0.0]
                s += 2 * TURN_RAMP + arc
                ref += r.turn * math.pi / 2
                heading = ref
            spans.append((s_a, s, r.turn))
            s += EXIT
            knots_s.append(s)
            knots_k.append(0.0)
            continue
        limit = pending[0].lo if pending else math.inf
        if rng.random() < 0.45:
            s = min(s + float(rng.uniform(10.0, 50.0)), max(limit, s + 1.0))
            knots_s.append(s)
            knots_k.append(0.0)
            continue
        kappa, trans, arc = _segment_curve(rng, spec.road.max_curvature, heading, ref)
        if s + 2 * trans + arc > limit:  # no curve into a reserved stretch: straight up to it
            s = max(limit, s + 1.0)
            knots_s.append(s)
            knots_k.append(0.0)
            continue
        heading += kappa * (arc + trans)
        knots_s += [s + trans, s + trans + arc, s + 2 * trans + arc]
        knots_k += [kappa, kappa, 0.0]
        s += 2 * trans + arc
    return knots_s, knots_k, spans


def _cycle(rng: np.random.Generator, spec: ScenarioSpec) -> LightCycle:
    it = spec.intersections
    assert it is not None
    c = LightCycle(green=float(rng.uniform(*it.green)), amber=float(rng.uniform(*it.amber)),
                   all_red=float(rng.uniform(*it.all_red)), cross_green=float(rng.uniform(*it.cross_green)),
                   cross_amber=float(rng.uniform(*it.amber)))
    return LightCycle(c.green, c.amber, c.all_red, c.cross_green, c.cross_amber,
                      offset=float(rng.uniform(0.0, c.period)))


def _intersection(road: Road, ident: int, s_a: float, s_b: float, turn: int, lw: float,
                  cycle: LightCycle) -> Intersection:
    """Geometry of an intersection whose turn (or straight box crossing) spans route [s_a, s_b]."""
    pa = road.points_at(s_a)
    ha = float(road.heading_at(s_a))
    u = np.array([math.cos(ha), math.sin(ha)])
    v = np.array([-u[1], u[0]])
    if turn == 0:
        center = pa + lw * u + (lw / 2) * v
        s_in, s_out = s_a, s_a + 2 * lw
    else:
        pb = road.points_at(s_b)
        hb = float(road.heading_at(s_b))
        ub = np.array([math.cos(hb), math.sin(hb)])
        vb = np.array([-ub[1], ub[0]])
        # centre = crossing of the two road centre lines (lane centre + lw/2 to the left)
        p1, p2 = pa + (lw / 2) * v, pb + (lw / 2) * vb
        a = np.array([u, -ub]).T
        t = np.linalg.solve(a, p2 - p1)
        center = p1 + t[0] * u
        s_in = s_a + float((center - pa) @ u) - lw
        s_out = s_b + (lw - float((pb - center) @ ub))
    cw = Crosswalk(ident + 1000, s_in - CROSSWALK_WIDTH / 2, CROSSWALK_WIDTH)
    stop = s_in - CROSSWALK_WIDTH - STOP_LINE_GAP
    return Intersection(id=ident, center=(float(center[0]), float(center[1])), heading=ha, half=lw,
                        turn=turn, s_in=float(s_in), s_out=float(s_out), stop_line=float(stop), cycle=cycle,
                        crosswalk=cw, s_turn_start=s_a, s_turn_end=s_b)
