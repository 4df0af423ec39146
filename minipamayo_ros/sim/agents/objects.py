"""Static scene objects of the traffic world: traffic-light cycles, intersections, crosswalks, merge lanes.

All positions are on the ego route (``sim.road.Road``): arc length ``s`` [m] and lateral offset
``d`` [m, left +] where that suffices, world coordinates [m] where it does not (an intersection's
centre and axes). A light's state is a pure function of time (no state to step), so any query at
any time gives the same answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum


class LightState(IntEnum):
    GREEN = 0
    AMBER = 1
    RED = 2


@dataclass(frozen=True)
class LightCycle:
    """Fixed-time signal plan of one intersection [s].

    Our approach: green -> amber -> red. The cross direction gets green after ``all_red``, then
    amber, then ``all_red`` again before ours turns green. ``offset`` shifts the cycle (seeded, so
    a car arrives at any phase).
    """

    green: float = 10.0
    amber: float = 3.0
    all_red: float = 1.5
    cross_green: float = 8.0
    cross_amber: float = 3.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        for name in ("green", "amber", "all_red", "cross_green", "cross_amber"):
            if getattr(self, name) <= 0.0:
                raise ValueError(f"LightCycle.{name} must be > 0 s")

    @property
    def period(self) -> float:
        return self.green + self.amber + 2 * self.all_red + self.cross_green + self.cross_amber

    def _phase(self, time: float) -> float:
        return (time + self.offset) % self.period

    def state(self, time: float) -> LightState:
        """Our approach's light at ``time``."""
        u = self._phase(time)
        if u < self.green:
            return LightState.GREEN
        if u < self.green + self.amber:
            return LightState.AMBER
        return LightState.RED

    def cross_state(self, time: float) -> LightState:
        """The cross direction's light at ``time``."""
        u = self._phase(time) - (self.green + self.amber + self.all_red)
        if 0.0 <= u < self.cross_green:
            return LightState.GREEN
        if 0.0 <= u < self.cross_green + self.cross_amber:
            return LightState.AMBER
        return LightState.RED

    def time_to_change(self, time: float) -> float:
        """[s] until our light changes state."""
        u = self._phase(time)
        for edge in (self.green, self.green + self.amber, self.period):
            if u < edge:
                return edge - u
        return self.period - u  # pragma: no cover (u < period always)


@dataclass(frozen=True)
class Crosswalk:
    """A zebra crossing over both lanes at route arc length ``s`` (centre), ``width`` along the road."""

    id: int
    s: float
    width: float = 3.0


@dataclass(frozen=True)
class Intersection:
    """A signalised crossing of the route with a two-lane cross street.

    ``center``/``heading``: world centre of the box and the heading of our approach (unit ``u``
    along it, ``v`` to its left). The box spans ``+-half`` [m] along both. ``turn``: +1 left,
    -1 right, 0 straight on. ``s_in``/``s_out``: route arc lengths where the route enters and
    leaves the box; ``stop_line``: route s of our stop line; ``crosswalk``: the crossing between
    the stop line and the box (None if none).
    """

    id: int
    center: tuple[float, float]
    heading: float
    half: float
    turn: int
    s_in: float
    s_out: float
    stop_line: float
    cycle: LightCycle
    crosswalk: Crosswalk | None = None
    s_turn_start: float = 0.0   # [m] route s where the turn (or the box crossing) starts
    s_turn_end: float = 0.0     # [m] and ends

    @property
    def axes(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """(u, v): unit vectors along our approach and to its left."""
        c, s = math.cos(self.heading), math.sin(self.heading)
        return (c, s), (-s, c)

    def local(self, x: float, y: float) -> tuple[float, float]:
        """World point -> (along u, along v) relative to the centre [m]."""
        (ux, uy), (vx, vy) = self.axes
        dx, dy = x - self.center[0], y - self.center[1]
        return dx * ux + dy * uy, dx * vx + dy * vy

    def contains(self, x: float, y: float, margin: float = 0.0) -> bool:
        a, b = self.local(x, y)
        return abs(a) <= self.half + margin and abs(b) <= self.half + margin

    def arm_headings(self) -> list[float]:
        """World headings (pointing away from the centre) of the arms the route does not use."""
        used = {math.pi, {0: 0.0, 1: math.pi / 2, -1: -math.pi / 2}[self.turn]}
        return [self.heading + a for a in (0.0, math.pi / 2, math.pi, -math.pi / 2)
                if not any(abs(math.remainder(a - u, 2 * math.pi)) < 1e-6 for u in used)]


@dataclass(frozen=True)
class MergeLane:
    """An extra lane on the right of the ego lane (``d = -lane_width``) from ``s_start`` to
    ``s_end``; its last ``taper`` metres narrow to nothing (the merging vehicle must be in our lane
    by then)."""

    id: int
    s_start: float
    s_end: float
    taper: float = 30.0

    def width_at(self, s: float, lane_width: float) -> float:
        """[m] drivable width of the merge lane at route ``s``."""
        if s < self.s_start or s > self.s_end:
            return 0.0
        return lane_width * min(1.0, (self.s_end - s) / max(self.taper, 1e-6))


@dataclass
class TrafficLayout:
    """Everything static a traffic scenario adds to a road (built once per episode)."""

    intersections: list[Intersection] = field(default_factory=list)
    crosswalks: list[Crosswalk] = field(default_factory=list)   # mid-block ones and those of intersections
    merge_lanes: list[MergeLane] = field(default_factory=list)
