"""Kinematics of road users: a state on a path, its footprint and an immutable snapshot.

After HighwayEnv's ``RoadObject`` / ``Vehicle``: an :class:`Agent` holds the kinematic state,
behaviour classes (``behavior.py``) only choose its longitudinal acceleration and lateral target
in :meth:`Agent.act`, and :meth:`Agent.step` integrates. Agents move on a *path*:

* :class:`RoutePath`: the ego road (``sim.road.Road``), either direction. Coordinates are the
  road's own: arc length ``s`` [m] and lateral offset ``d`` [m, left of the ego-lane centre
  positive], so lane membership is a comparison, not a projection.
* :class:`LinePath`: a straight line (a cross street), coordinate ``s`` along it from its origin,
  ``d`` to its left.

Units SI, poses in the world (``odom``) frame, REP-103.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from minipamayo_ros.sim.road import Road

if TYPE_CHECKING:  # pragma: no cover
    from minipamayo_ros.sim.traffic import Traffic

_TWO_PI = 2.0 * math.pi


class AgentKind(IntEnum):
    VEHICLE = 0
    PEDESTRIAN = 1
    OBSTACLE = 2   # classic static boxes (``road.Obstacle``), listed for scorers


class Role(IntEnum):
    """What an agent does in the scenario (sets its behaviour and the fault rules)."""

    LEAD = 0          # ahead in our lane, same direction
    ONCOMING = 1      # opposite lane, towards us
    CUT_IN = 2        # merges into our lane from the merge lane
    PARKED = 3        # parked on the right, partly in our lane
    CROSS = 4         # cross traffic at an intersection
    PEDESTRIAN = 5
    OBSTACLE = 6      # classic static obstacle
    EGO = 7


@dataclass(frozen=True)
class AgentState:
    """One road user at one instant (what a scorer, the node and the renderer read).

    Pose: centre of the footprint in the world frame; ``speed`` is along ``yaw`` (>= 0),
    ``accel`` longitudinal. ``s``/``d``: route coordinates of the centre (``nan`` for agents off
    the route, e.g. cross traffic far from it).
    """

    id: int
    kind: AgentKind
    role: Role
    x: float                 # [m]
    y: float                 # [m]
    yaw: float               # [rad]
    length: float            # [m]
    width: float             # [m]
    height: float            # [m]
    speed: float             # [m/s]
    accel: float             # [m/s^2]
    s: float = math.nan      # [m] route arc length of the centre
    d: float = math.nan      # [m] route lateral offset of the centre (left +)
    in_own_lane: bool = True     # false while drifted, merging, pulling out or crossing
    in_ego_lane: bool = False    # footprint overlaps the ego lane (|d| < lane_width / 2)
    cut_in_time: float | None = None  # [s] when it moved into our lane ahead of us
    braking: bool = False        # brake lights on
    indicator: int = 0           # -1 right, 0 off, +1 left

    def corners(self) -> list[tuple[float, float]]:
        """Footprint corners (world) counter-clockwise from rear-right."""
        return box_corners(self.x, self.y, self.yaw, self.length, self.width)


def box_corners(x: float, y: float, yaw: float, length: float, width: float) -> list[tuple[float, float]]:
    """Corners of a ``length`` x ``width`` box centred at (x, y) heading ``yaw``: rear-right,
    front-right, front-left, rear-left."""
    c, s = math.cos(yaw), math.sin(yaw)
    hl, hw = length / 2, width / 2
    return [(x + c * ax - s * ay, y + s * ax + c * ay)
            for ax, ay in ((-hl, -hw), (hl, -hw), (hl, hw), (-hl, hw))]


class RoutePath:
    """The ego road as a path: ``pose(s, d)`` in O(1) (uniform samples, plain floats)."""

    def __init__(self, road: Road) -> None:
        self.road = road
        self._ds = float(road.s[1] - road.s[0])
        self._n = len(road.s)

    def frame(self, s: float) -> tuple[float, float, float, float]:
        """(x, y, heading, curvature) of the ego-lane centre at arc length ``s`` (clamped)."""
        r = self.road
        u = min(max(s / self._ds, 0.0), self._n - 1.000001)
        i = int(u)
        t = u - i
        h0, h1 = r._h[i], r._h[i + 1]
        dh = (h1 - h0 + math.pi) % _TWO_PI - math.pi
        return (r._x[i] + t * (r._x[i + 1] - r._x[i]), r._y[i] + t * (r._y[i + 1] - r._y[i]),
                h0 + t * dh, r._k[i] + t * (r._k[i + 1] - r._k[i]))

    def pose(self, s: float, d: float) -> tuple[float, float, float]:
        """World (x, y, road heading) at route coordinates (s, d)."""
        x, y, h, _ = self.frame(s)
        return x - math.sin(h) * d, y + math.cos(h) * d, h


class LinePath:
    """A straight path from ``(x0, y0)`` heading ``heading`` (e.g. a cross street's lane)."""

    def __init__(self, x0: float, y0: float, heading: float) -> None:
        self.x0, self.y0, self.heading = x0, y0, heading
        self._c, self._s = math.cos(heading), math.sin(heading)

    def frame(self, s: float) -> tuple[float, float, float, float]:
        return self.x0 + self._c * s, self.y0 + self._s * s, self.heading, 0.0

    def pose(self, s: float, d: float) -> tuple[float, float, float]:
        return self.x0 + self._c * s - self._s * d, self.y0 + self._s * s + self._c * d, self.heading


Path = RoutePath | LinePath


class Agent:
    """Kinematic state of a road user on a path (behaviour subclasses set ``accel`` and ``d_rate``).

    Longitudinal: ``s`` advances by ``direction * speed`` [m/s]; ``speed >= 0`` integrates ``accel``
    [m/s^2] (clamped to ``[-max_decel, max_accel]``) up to ``max_speed``. Lateral: ``d`` moves at
    ``d_rate`` [m/s] (set by the behaviour, e.g. a lane change or a pedestrian walking across).
    """

    kind = AgentKind.VEHICLE
    role = Role.LEAD
    max_accel = 3.0     # [m/s^2]
    max_decel = 6.0     # [m/s^2] (positive); the hardest braking of any road user here
    max_speed = 20.0    # [m/s]

    def __init__(self, agent_id: int, path: Path, s: float, d: float, speed: float = 0.0, *,
                 direction: int = 1, length: float = 4.5, width: float = 1.8, height: float = 1.5,
                 color: tuple[int, int, int] = (160, 160, 160)) -> None:
        self.id = agent_id
        self.path = path
        self.s, self.d = float(s), float(d)
        self.speed = float(speed)
        self.accel = 0.0
        self.d_rate = 0.0
        self.direction = 1 if direction >= 0 else -1
        self.length, self.width, self.height = length, width, height
        self.color = color
        self.active = True           # False: left the scene (not drawn, not collided with)
        self.cut_in_time: float | None = None
        self.indicator = 0

    # ------------------------------------------------------------------ state
    @property
    def on_route(self) -> bool:
        return isinstance(self.path, RoutePath)

    def heading(self) -> float:
        """[rad] heading of the motion (path direction plus the lateral rate's angle)."""
        _, _, h, _ = self.path.frame(self.s)
        base = h if self.direction > 0 else h + math.pi
        v_long = max(self.speed, 0.5)
        # lateral rate is in path coordinates (left +); seen from a car driving backwards along
        # the path, "left of the path" is its right
        return base + math.atan2(self.direction * self.d_rate, v_long)

    def pose(self) -> tuple[float, float, float]:
        """World (x, y, yaw) of the footprint centre."""
        x, y, _ = self.path.pose(self.s, self.d)
        return x, y, self.heading()

    def in_own_lane(self) -> bool:
        return True

    def state(self, lane_width: float, time: float) -> AgentState:
        """Immutable snapshot (``lane_width`` of the ego road: lane tests)."""
        x, y, yaw = self.pose()
        s = d = math.nan
        in_ego = False
        if self.on_route:
            s, d = self.s, self.d
            half = self._half_extent_lateral(yaw)
            in_ego = abs(d) - half < lane_width / 2
        return AgentState(self.id, self.kind, self.role, x, y, yaw, self.length, self.width,
                          self.height, abs(self.speed), self.accel, s, d, self.in_own_lane(), in_ego,
                          self.cut_in_time, self.braking(), self.indicator)

    def _half_extent_lateral(self, yaw: float) -> float:
        """Half the footprint's extent across the route at its centre [m]."""
        if not self.on_route:
            return self.width / 2
        _, _, h, _ = self.path.frame(self.s)
        rel = yaw - h
        return 0.5 * (abs(self.length * math.sin(rel)) + abs(self.width * math.cos(rel)))

    def braking(self) -> bool:
        return self.accel < -1.0 or (self.kind == AgentKind.VEHICLE and self.speed < 0.1)

    def corners(self) -> list[tuple[float, float]]:
        x, y, yaw = self.pose()
        return box_corners(x, y, yaw, self.length, self.width)

    # ------------------------------------------------------------------ dynamics
    def act(self, time: float, traffic: Traffic) -> None:
        """Choose ``accel`` / ``d_rate`` at ``time`` [s] seeing ``traffic`` (behaviour subclasses);
        the base agent keeps them."""

    def step(self, dt: float) -> None:
        """Integrate ``dt`` [s] (semi-implicit Euler; speed never negative)."""
        a = min(max(self.accel, -self.max_decel), self.max_accel)
        v = min(max(self.speed + a * dt, 0.0), self.max_speed)
        self.s += self.direction * 0.5 * (self.speed + v) * dt
        self.speed = v
        self.d += self.d_rate * dt
