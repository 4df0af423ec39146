"""Behaviour of road users: IDM car-following, speed schedules, lateral moves, pedestrians.

After HighwayEnv's ``IDMVehicle``: the behaviour only chooses the agent's longitudinal
acceleration (and lateral rate) in ``act``; ``kinematics.Agent.step`` integrates. Decisions run
at the traffic's decision rate (20 Hz), kinematics at the physics rate. Everything random is
drawn from the agent's own generator, so a seed gives the same traffic whatever the ego does
until the ego interacts with it.

The leader of a vehicle (the next thing it must not run into: a vehicle, a red stop line, a
pedestrian in its path, a blocking parked car) is found by ``sim.traffic.Traffic`` and handed in
as a :class:`Leader`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import TYPE_CHECKING

import numpy as np

from minipamayo_ros.sim.agents.kinematics import Agent, AgentKind, AgentState, Path, Role
from minipamayo_ros.sim.agents.objects import Intersection

if TYPE_CHECKING:  # pragma: no cover
    from minipamayo_ros.sim.traffic import Traffic


@dataclass(frozen=True)
class IDM:
    """Intelligent Driver Model parameters (SI units); HighwayEnv's, with a gentler comfort."""

    accel: float = 1.5         # [m/s^2] maximum (comfortable) acceleration a
    decel: float = 2.5         # [m/s^2] comfortable deceleration b
    delta: float = 4.0         # free-road exponent
    time_gap: float = 1.5      # [s] desired time headway T
    min_gap: float = 3.0       # [m] bumper-to-bumper gap at standstill s0


@dataclass(frozen=True)
class Leader:
    """What is ahead of a vehicle on its path: bumper-to-bumper ``gap`` [m], ``speed`` [m/s] and
    ``accel`` [m/s^2] (a stop line or a waiting pedestrian is a leader standing still)."""

    gap: float
    speed: float = 0.0
    accel: float = 0.0


def idm_acceleration(p: IDM, speed: float, desired_speed: float, leader: Leader | None = None) -> float:
    """[m/s^2] IDM acceleration of a vehicle at ``speed`` wanting ``desired_speed`` behind ``leader``."""
    v0 = max(desired_speed, 0.1)
    a = p.accel * (1.0 - (max(speed, 0.0) / v0) ** p.delta)
    if leader is not None:
        dv = speed - leader.speed
        s_star = p.min_gap + max(0.0, speed * p.time_gap + speed * dv / (2.0 * math.sqrt(p.accel * p.decel)))
        a -= p.accel * (s_star / max(leader.gap, 0.05)) ** 2
    return a


def smoothstep(x: float) -> float:
    """0 -> 1 with zero slope at both ends (x clamped to [0, 1])."""
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True)
class LateralMove:
    """A smooth change of lateral offset from ``d_from`` to ``d_to`` [m] over ``duration`` [s] from
    ``t0`` [s]: a lane change, a drift, a pull-out."""

    t0: float
    duration: float
    d_from: float
    d_to: float

    def offset(self, time: float) -> float:
        return self.d_from + (self.d_to - self.d_from) * smoothstep((time - self.t0) / self.duration)

    def done(self, time: float) -> bool:
        return time >= self.t0 + self.duration


class Vehicle(Agent):
    """A vehicle on a path following IDM behind its leader, with an optional lateral move."""

    kind = AgentKind.VEHICLE
    idm = IDM()
    act_period = 0.05  # [s] decision period (the traffic's)
    lane_half = 1.75   # [m] half lane width (in its own lane: footprint inside the lane lines + 0.1 m)

    def __init__(self, agent_id: int, path: Path, s: float, d: float, speed: float, *,
                 desired_speed: float, rng: np.random.Generator, role: Role = Role.LEAD,
                 direction: int = 1, lane_d: float | None = None, **body: object) -> None:
        super().__init__(agent_id, path, s, d, speed, direction=direction, **body)  # type: ignore[arg-type]
        self.role = role
        self.desired_speed = desired_speed
        self.rng = rng
        self.lane_d = d if lane_d is None else lane_d   # centre of its own lane (route d)
        self.move: LateralMove | None = None
        self.hold_until = -1.0                          # [s] standing still until (hard-brake stop)
        self.stops_done: set[float] = set()             # stop lines (route s) it has stopped at
        self.stop_since: dict[float, float] = {}        # stop line -> standing there since [s]

    def in_own_lane(self) -> bool:
        return abs(self.d - self.lane_d) + self.width / 2 <= self.lane_half + 0.1

    def start_move(self, time: float, d_to: float, duration: float) -> None:
        self.move = LateralMove(time, duration, self.d, d_to)

    def lateral(self, time: float, traffic: Traffic) -> None:
        """Set ``d_rate`` so that ``d`` follows the current lateral move, or its lane centre shifted
        to pass parked vehicles (self-correcting)."""
        t = time + self.act_period
        if self.move is not None and not self.move.done(time):
            target = self.move.offset(t)
        else:
            target = self.lane_d
            if self.on_route and self.direction > 0:
                target += traffic.pass_offset_at(self.s + self.speed * self.act_period)
        self.d_rate = (target - self.d) / self.act_period

    def longitudinal(self, time: float, traffic: Traffic) -> float:
        leader = traffic.leader_of(self, time)
        v0 = min(self.desired_speed, traffic.curve_speed(self))
        return idm_acceleration(self.idm, self.speed, v0, leader)

    def act(self, time: float, traffic: Traffic) -> None:
        self.accel = self.longitudinal(time, traffic)
        if time < self.hold_until:
            self.accel = -self.max_decel
        self.lateral(time, traffic)


class LeadVehicle(Vehicle):
    """Ahead in our lane: changes its desired speed now and then and sometimes brakes hard.

    Hard braking (``hard_brake_rate`` [1/s], only while the ego is within ``brake_range`` behind,
    where it matters): decelerates at 4-6 m/s^2 to a lower speed or to a stop held 1-4 s.
    """

    brake_range = 40.0  # [m] ego front -> our rear

    def __init__(self, *args: object, speed_range: tuple[float, float], speed_change_rate: float,
                 hard_brake_rate: float, hard_brake_decel: tuple[float, float], stop_probability: float,
                 **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.speed_range = speed_range
        self.speed_change_rate = speed_change_rate
        self.hard_brake_rate = hard_brake_rate
        self.hard_brake_decel = hard_brake_decel
        self.stop_probability = stop_probability
        self.brake: tuple[float, float] | None = None   # (deceleration, target speed) while braking

    def act(self, time: float, traffic: Traffic) -> None:
        dt = self.act_period
        rng = self.rng
        if rng.random() < self.speed_change_rate * dt:
            self.desired_speed = float(rng.uniform(*self.speed_range))
        gap_to_ego = self.s - self.length / 2 - traffic.ego_front_s
        if (self.brake is None and time >= self.hold_until and self.speed > 3.0
                and 0.0 < gap_to_ego < self.brake_range and rng.random() < self.hard_brake_rate * dt):
            stop = rng.random() < self.stop_probability
            target = 0.0 if stop else float(rng.uniform(0.2, 0.6)) * self.speed
            self.brake = (float(rng.uniform(*self.hard_brake_decel)), target)
        super().act(time, traffic)
        if self.brake is not None:
            decel, target = self.brake
            self.accel = min(self.accel, -decel)
            if self.speed <= target + 0.05:
                self.brake = None
                if target == 0.0:
                    self.hold_until = time + float(rng.uniform(1.0, 4.0))


class OncomingVehicle(Vehicle):
    """In the opposite lane, towards us; may drift towards / over the centre line once."""

    def __init__(self, *args: object, drift: float = 0.0, drift_trigger: float = 50.0,
                 **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.drift = drift                  # [m] towards our lane (0: never)
        self.drift_trigger = drift_trigger  # [m] front-to-front distance that starts it
        self.drift_end = math.inf

    def act(self, time: float, traffic: Traffic) -> None:
        if self.drift > 0.0 and self.move is None:
            ahead = self.s - self.length / 2 - traffic.ego_front_s
            if 0.0 < ahead < self.drift_trigger:
                duration = float(self.rng.uniform(1.0, 1.6))
                self.start_move(time, self.lane_d - self.drift, duration)
                self.drift_end = time + duration + float(self.rng.uniform(1.0, 2.5))
        elif self.move is not None and time >= self.drift_end and self.move.d_to != self.lane_d:
            self.start_move(time, self.lane_d, 1.5)
        super().act(time, traffic)


class CutInVehicle(Vehicle):
    """In the merge lane; merges into our lane once its rear is ``time_gap`` of our speed ahead of
    our front (and >= ``min_gap``), or behind us if we never leave room before the lane ends."""

    min_gap = 5.0           # [m]
    indicate_before = 1.0   # [s] indicator on before moving over

    def __init__(self, *args: object, time_gap: float, merge_end: float, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.time_gap = time_gap
        self.merge_end = merge_end       # [m] route s where the merge lane has gone
        self.indicate_from: float | None = None

    def act(self, time: float, traffic: Traffic) -> None:
        if self.move is None:
            rear = self.s - self.length / 2
            gap = rear - traffic.ego_front_s
            behind_us = traffic.ego_rear_s - (self.s + self.length / 2)
            room_ahead = gap >= max(self.min_gap, self.time_gap * traffic.ego_speed)
            room_behind = behind_us >= self.min_gap and self.s > self.merge_end - 60.0
            if self.indicate_from is None and (room_ahead or room_behind):
                self.indicate_from = time
                self.indicator = 1
            if self.indicate_from is not None and time - self.indicate_from >= self.indicate_before:
                self.start_move(time, 0.0, float(self.rng.uniform(2.5, 3.5)))
                self.lane_d = 0.0
        elif self.move.done(time):
            self.indicator = 0
        super().act(time, traffic)
        end_gap = self.merge_end - 8.0 - (self.s + self.length / 2)
        if self.move is None and end_gap < 35.0:
            # the lane ends: wait at its end rather than run out of road
            self.accel = min(self.accel, idm_acceleration(self.idm, self.speed, self.desired_speed,
                                                          Leader(max(end_gap, 0.05))))


class ParkedVehicle(Vehicle):
    """Parked on the right, partly in our lane. A blocking one pulls out after the ego stood behind
    it for ``pull_out_wait`` s, then drives on in our lane."""

    pull_out_wait = 3.0  # [s]

    def __init__(self, *args: object, blocking: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.blocking = blocking
        self.waited_since: float | None = None
        self.pulled_out = False

    def act(self, time: float, traffic: Traffic) -> None:
        if not self.pulled_out:
            self.accel, self.d_rate = 0.0, 0.0
            if self.blocking:
                gap = self.s - self.length / 2 - traffic.ego_front_s
                if traffic.ego_speed < 0.1 and -1.0 < gap < 12.0:
                    self.waited_since = time if self.waited_since is None else self.waited_since
                    if time - self.waited_since >= self.pull_out_wait:
                        self.pulled_out = True
                        self.indicator = 1
                        self.start_move(time, 0.0, 2.5)
                        self.lane_d = 0.0
                else:
                    self.waited_since = None
            return
        if self.move is not None and self.move.done(time):
            self.indicator = 0
        super().act(time, traffic)


class CrossVehicle(Vehicle):
    """Cross traffic at an intersection on a straight path; its leader includes its stop line
    (``stop_s`` on its path) while its light is red (or amber and it can still stop comfortably)."""

    def __init__(self, *args: object, intersection: Intersection, stop_s: float, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.intersection = intersection
        self.stop_s = stop_s


class WalkState(IntEnum):
    WAITING = 0      # at the kerb, not started
    STEPPING = 1     # hesitating: stepping into the road
    HESITATING = 2   # standing just inside the road
    WALKING = 3
    PAUSED = 4       # standing on the centre line
    DONE = 5         # reached the far kerb


class Pedestrian(Agent):
    """Crosses the road at route ``s`` from one kerb to the other (a crosswalk or mid-block).

    State machine: ``WAITING`` (until our front is ``trigger_distance`` from the crossing) ->
    [``STEPPING`` 0.5 m -> ``HESITATING`` 1-2.5 s] -> ``WALKING`` -> [``PAUSED`` on the centre line
    2-6 s] -> ``WALKING`` -> ``DONE``.
    """

    kind = AgentKind.PEDESTRIAN
    role = Role.PEDESTRIAN
    max_speed = 3.0

    def __init__(self, agent_id: int, path: Path, s: float, d_start: float, d_end: float, *,
                 walk_speed: float, trigger_distance: float, hesitate: bool, stop_halfway: bool,
                 pause_d: float, rng: np.random.Generator, crosswalk_id: int | None = None,
                 **body: object) -> None:
        super().__init__(agent_id, path, s, d_start, 0.0, **body)  # type: ignore[arg-type]
        self.d_start, self.d_end = d_start, d_end
        self.sign = 1.0 if d_end > d_start else -1.0
        self.walk_speed = walk_speed
        self.trigger_distance = trigger_distance
        self.hesitate, self.stop_halfway = hesitate, stop_halfway
        self.pause_d = pause_d
        self.crosswalk_id = crosswalk_id
        self.rng = rng
        self.walk = WalkState.WAITING
        self.until = 0.0
        self._paused_once = False

    def heading(self) -> float:
        _, _, h, _ = self.path.frame(self.s)
        return h + self.sign * math.pi / 2

    def in_own_lane(self) -> bool:
        return self.walk in (WalkState.WAITING, WalkState.DONE)

    def state(self, lane_width: float, time: float) -> AgentState:
        """Its speed is its walking speed (across the road)."""
        return replace(super().state(lane_width, time), speed=abs(self.d_rate), accel=0.0)

    def on_road(self, lane_width: float) -> bool:
        return -lane_width / 2 - 0.2 < self.d < 1.5 * lane_width + 0.2

    def act(self, time: float, traffic: Traffic) -> None:
        self.accel = 0.0
        w = self.walk
        if w == WalkState.WAITING:
            if 0.0 < self.s - traffic.ego_front_s < self.trigger_distance:
                self.walk = WalkState.STEPPING if self.hesitate else WalkState.WALKING
        elif w == WalkState.STEPPING:
            if self.sign * (self.d - self.d_start) >= self.edge_step():
                self.walk, self.until = WalkState.HESITATING, time + float(self.rng.uniform(1.0, 2.5))
        elif w == WalkState.HESITATING:
            if time >= self.until:
                self.walk = WalkState.WALKING
        elif w == WalkState.WALKING:
            if (self.stop_halfway and not self._paused_once
                    and self.sign * (self.d - self.pause_d) >= 0.0):
                self._paused_once = True
                self.walk, self.until = WalkState.PAUSED, time + float(self.rng.uniform(2.0, 6.0))
            elif self.sign * (self.d - self.d_end) >= 0.0:
                self.walk = WalkState.DONE
        elif w == WalkState.PAUSED and time >= self.until:
            self.walk = WalkState.WALKING
        moving = self.walk in (WalkState.STEPPING, WalkState.WALKING)
        speed = self.walk_speed * (0.6 if self.walk == WalkState.STEPPING else 1.0)
        self.d_rate = self.sign * speed if moving else 0.0

    def edge_step(self) -> float:
        """[m] how far a hesitating pedestrian steps in from its start kerb (0.3 m past the edge
        line, see ``sim.traffic.KERB``)."""
        return 1.5

    def step(self, dt: float) -> None:
        self.d += self.d_rate * dt
        if self.sign * (self.d - self.d_end) > 0.0:
            self.d = self.d_end
