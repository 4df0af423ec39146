"""The road users of one traffic episode: built for a seed and a scenario type, stepped with the
world, queried by the expert, the renderer, the metrics and the node.

Decisions (``Agent.act``: IDM, speed schedules, lane changes, pedestrian state machines) run at
``DECISION_PERIOD`` (20 Hz), kinematics every physics step. Each agent draws from its own random
stream (``rng([seed, "AGNT", id])``), so the traffic of a seed is the same whatever the ego does
until the ego interacts with it. The ego is seen through :meth:`Traffic.set_ego` (route s of its
front / rear bumper, speed, lateral offset), which the world calls every physics step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from minipamayo_ros.events import Reason
from minipamayo_ros.sim.agents.behavior import (
    CrossVehicle,
    CutInVehicle,
    Leader,
    LeadVehicle,
    OncomingVehicle,
    ParkedVehicle,
    Pedestrian,
    Vehicle,
    WalkState,
    smoothstep,
)
from minipamayo_ros.sim.agents.kinematics import Agent, AgentState, LinePath, Role, RoutePath
from minipamayo_ros.sim.agents.objects import Intersection, LightState, TrafficLayout
from minipamayo_ros.sim.layout import PlannedSpot
from minipamayo_ros.sim.metrics import rectangles_overlap
from minipamayo_ros.sim.road import Road
from minipamayo_ros.sim.scenario import ScenarioSpec
from minipamayo_ros.sim.scene import Bump, CrosswalkView, LeadView, LightView, StopTarget, TrafficView

DECISION_PERIOD = 0.05   # [s]
KERB = 1.2               # [m] pedestrians wait this far beyond the edge line
AMBER_DECEL = 3.0        # [m/s^2] on amber, stop if this deceleration suffices (else go)
PASS_CLEARANCE = 0.4     # [m] ego side -> parked vehicle side when passing
MAX_PASS_OFFSET = 0.7    # [m] largest offset inside the lane (ego stays inside its lane lines)
MAX_SHY_OFFSET = 0.45    # [m] largest shift away from a drifting oncoming car (on curves too)
EGO_HALF_WIDTH = 0.9     # [m]
CURVE_LAT_ACCEL = 2.0    # [m/s^2] agents' curve speed
CROSS_START = 60.0       # [m] cross paths start this far before the intersection centre
CROSS_END = 40.0         # [m] and cross vehicles leave the scene this far after it (out of the camera's
#                          view from our approach; beyond, their straight path may meet the route again)

#: body colours of vehicles (RGB) and pedestrians' clothes
CAR_COLORS = ((190, 190, 195), (40, 40, 45), (150, 20, 25), (25, 60, 140), (230, 230, 230),
              (90, 95, 100), (20, 90, 60), (200, 160, 40), (120, 70, 40))
CLOTHES = ((40, 50, 110), (150, 30, 30), (30, 30, 30), (200, 200, 60), (60, 120, 60), (220, 120, 40),
           (130, 130, 140), (90, 40, 110))


@dataclass
class _EgoView:
    s: float = 0.0           # [m] route s of base_link
    d: float = 0.0           # [m]
    front_s: float = 0.0
    rear_s: float = 0.0
    speed: float = 0.0


class Traffic:
    """Agents, lights and crosswalks of one episode (see module doc)."""

    def __init__(self, seed: int, spec: ScenarioSpec, road: Road, layout: TrafficLayout,
                 spots: PlannedSpot, ego_front_s: float, ego_length: float = 4.2) -> None:
        self.seed = int(seed)
        self.spec = spec
        self.road = road
        self.layout = layout
        self.lane_width = lw = road.lane_width
        self.route = RoutePath(road)
        self.agents: list[Agent] = []
        self.time = 0.0
        self._next_act = 0.0
        self._next_id = 1
        self.ego = _EgoView(front_s=ego_front_s, rear_s=ego_front_s - ego_length)
        self._rng = np.random.default_rng([self.seed, 0x53_50_41_57])  # "SPAW"
        self._amber_go: dict[int, float] = {}   # intersection id -> amber phase start the ego goes on
        self._pending_cut_ins = list(layout.merge_lanes)
        self._curv = np.abs(road.curvature)
        self._cross_paths: dict[tuple[int, int], LinePath] = {}
        self._build(spots, lw)

    # ------------------------------------------------------------------ construction
    def _agent_rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, 0x41_47_4E_54, self._next_id])  # "AGNT"

    def _vehicle_body(self, rng: np.random.Generator, van: bool = False) -> dict[str, object]:
        if van:
            length, width, height = rng.uniform(5.2, 6.0), rng.uniform(1.95, 2.1), rng.uniform(2.0, 2.4)
        else:
            length, width, height = rng.uniform(3.8, 5.0), rng.uniform(1.7, 1.95), rng.uniform(1.4, 1.7)
        color = CAR_COLORS[int(rng.integers(len(CAR_COLORS)))]
        return {"length": float(length), "width": float(width), "height": float(height), "color": color}

    def _add(self, agent: Agent) -> Agent:
        if isinstance(agent, Vehicle):
            agent.lane_half = self.lane_width / 2
        self.agents.append(agent)
        self._next_id += 1
        return agent

    def _build(self, spots: PlannedSpot, lw: float) -> None:
        spec, rng = self.spec, self._rng
        front = self.ego.front_s
        if spec.lead_vehicles is not None:
            ls = spec.lead_vehicles
            s = front
            for _ in range(int(rng.integers(ls.count[0], ls.count[1] + 1))):
                r = self._agent_rng()
                body = self._vehicle_body(r, van=r.random() < 0.15)
                s += float(rng.uniform(*ls.gap)) + float(body["length"]) / 2  # type: ignore[arg-type]
                v = float(rng.uniform(*ls.speed))
                self._add(LeadVehicle(self._next_id, self.route, s, 0.0, min(v, self._curve_limit(s, v)),
                                      desired_speed=v, rng=r, role=Role.LEAD, speed_range=ls.speed,
                                      speed_change_rate=ls.speed_change_rate,
                                      hard_brake_rate=ls.hard_brake_rate,
                                      hard_brake_decel=ls.hard_brake_decel,
                                      stop_probability=ls.stop_probability, **body))
                s += float(body["length"]) / 2  # type: ignore[arg-type]
        if spec.oncoming is not None:
            for _ in range(int(rng.integers(spec.oncoming.count[0], spec.oncoming.count[1] + 1))):
                self._spawn_oncoming(float(rng.uniform(front + 50.0, self.road.length - 10.0)))
        if spec.parked is not None:
            ps = spec.parked
            for sp in spots.parked:
                r = self._agent_rng()
                blocking = r.random() < ps.blocking_probability
                body = self._vehicle_body(r, van=blocking or r.random() < 0.2)
                intrusion = float(r.uniform(1.5, 2.1) if blocking else r.uniform(*ps.intrusion))
                d = -lw / 2 + intrusion - float(body["width"]) / 2  # type: ignore[arg-type]
                self._add(ParkedVehicle(self._next_id, self.route, sp, d, 0.0, desired_speed=7.0, rng=r,
                                        role=Role.PARKED, blocking=blocking, **body))
        if spec.pedestrians is not None:
            pe = spec.pedestrians
            for sc, cw in spots.crossings:
                r = self._agent_rng()
                from_right = r.random() < 0.5
                d_right, d_left = -lw / 2 - KERB, 1.5 * lw + KERB
                height = float(r.uniform(1.55, 1.9))
                self._add(Pedestrian(
                    self._next_id, self.route, sc + float(r.uniform(-0.8, 0.8)),
                    d_right if from_right else d_left, d_left if from_right else d_right,
                    walk_speed=float(r.uniform(*pe.speed)),
                    trigger_distance=float(r.uniform(*pe.trigger_distance)),
                    hesitate=bool(r.random() < pe.hesitate), stop_halfway=bool(r.random() < pe.stop_halfway),
                    pause_d=lw / 2, rng=r, crosswalk_id=cw, length=0.45, width=0.6, height=height,
                    color=CLOTHES[int(r.integers(len(CLOTHES)))]))
        if spec.intersections is not None:
            for ix in self.layout.intersections:
                for _ in range(int(rng.integers(spec.intersections.cross_traffic[0],
                                                spec.intersections.cross_traffic[1] + 1))):
                    self._spawn_cross(ix)

    def _spawn_oncoming(self, s: float) -> None:
        spec = self.spec.oncoming
        assert spec is not None
        r = self._agent_rng()
        body = self._vehicle_body(r, van=r.random() < 0.15)
        v = float(r.uniform(*spec.speed))
        drift = float(r.uniform(*spec.drift)) if r.random() < spec.drift_probability else 0.0
        if any(a.role == Role.ONCOMING and a.active and abs(a.s - s) < 12.0 for a in self.agents):
            s += 15.0
        if s > self.road.length - 5.0:
            return
        v0 = min(v, self._curve_limit(s, v, -1))
        self._add(OncomingVehicle(self._next_id, self.route, s, self.lane_width, v0,
                                  desired_speed=v, rng=r, role=Role.ONCOMING, direction=-1, drift=drift,
                                  drift_trigger=float(r.uniform(25.0, 70.0)), **body))

    def _spawn_cross(self, ix: Intersection) -> None:
        """A vehicle on a cross arm driving through the box (from the arm the route exits by, in
        the route's opposite lane, so that it never follows the route afterwards)."""
        r = self._agent_rng()
        side = (1 if r.random() < 0.5 else -1) if ix.turn == 0 else -ix.turn
        key = (ix.id, side)
        path = self._cross_paths.get(key)
        if path is None:
            heading = ix.heading + side * math.pi / 2   # travel direction
            c, s = math.cos(heading), math.sin(heading)
            # lane centre: right of the travel direction, CROSS_START m before the centre
            x0 = ix.center[0] - c * CROSS_START + s * (self.lane_width / 2)
            y0 = ix.center[1] - s * CROSS_START - c * (self.lane_width / 2)
            path = self._cross_paths[key] = LinePath(x0, y0, heading)
        queue = [a for a in self.agents if a.path is path]
        start = float(r.uniform(20.0, 36.0)) + 14.0 * len(queue)   # [m] before the centre
        body = self._vehicle_body(r, van=r.random() < 0.15)
        v = float(r.uniform(6.0, 9.0))
        self._add(CrossVehicle(self._next_id, path, CROSS_START - start, 0.0, v, desired_speed=v, rng=r,
                               role=Role.CROSS, intersection=ix, stop_s=CROSS_START - ix.half - 1.0, **body))

    # ------------------------------------------------------------------ ego / time
    @property
    def ego_front_s(self) -> float:
        return self.ego.front_s

    @property
    def ego_rear_s(self) -> float:
        return self.ego.rear_s

    @property
    def ego_speed(self) -> float:
        return self.ego.speed

    def set_ego(self, s: float, d: float, front_s: float, rear_s: float, speed: float) -> None:
        e = self.ego
        e.s, e.d, e.front_s, e.rear_s, e.speed = s, d, front_s, rear_s, speed

    def step(self, dt: float) -> None:
        """Advance the traffic by ``dt`` [s] (decisions when due, then kinematics)."""
        if self.time + 1e-9 >= self._next_act:
            self._next_act += DECISION_PERIOD
            self._spawn_due()
            self._amber_decisions()
            for a in self.agents:
                if a.active:
                    a.act(self.time, self)
        self.time += dt
        lw = self.lane_width
        for a in self.agents:
            if not a.active:
                continue
            a.step(dt)
            if isinstance(a, CrossVehicle) and a.s > CROSS_START + CROSS_END:
                a.active = False
            elif a.role == Role.ONCOMING and a.s < self.ego.rear_s - 30.0:
                a.active = False
                self._spawn_oncoming(self.ego.front_s + float(self._rng.uniform(120.0, 200.0)))
            elif a.on_route and a.cut_in_time is None and a.role in (Role.CUT_IN, Role.PARKED) \
                    and a.d + a.width / 2 > -lw / 2 and a.s - a.length / 2 > self.ego.front_s - 1.0 \
                    and not a.in_own_lane() and a.d_rate > 0.0:
                a.cut_in_time = self.time

    def _spawn_due(self) -> None:
        cut = self.spec.cut_in
        if cut is None:
            return
        for ml in list(self._pending_cut_ins):
            if self.ego.front_s < ml.s_start + 5.0:
                continue
            self._pending_cut_ins.remove(ml)
            r = self._agent_rng()
            body = self._vehicle_body(r)
            delta = float(r.uniform(*cut.speed_delta))
            time_gap = float(r.uniform(*cut.time_gap))
            v = max(self.ego.speed + delta, 3.0)
            length = float(body["length"])  # type: ignore[arg-type]
            if delta > 0.0:   # faster: starts beside our front and overtakes
                s = self.ego.front_s + float(r.uniform(-2.0, 4.0)) + length / 2
            else:             # slower: ahead, merges at once
                gap = max(5.0, time_gap * self.ego.speed) + float(r.uniform(0.0, 6.0))
                s = self.ego.front_s + gap + length / 2
            s = max(s, ml.s_start + length / 2)
            self._add(CutInVehicle(self._next_id, self.route, s, -self.lane_width, v, desired_speed=v, rng=r,
                                   role=Role.CUT_IN, lane_d=-self.lane_width, time_gap=time_gap,
                                   merge_end=ml.s_end, **body))

    def _amber_decisions(self) -> None:
        """On the first decision of an amber phase: the ego goes if it cannot stop comfortably."""
        e = self.ego
        for ix in self.layout.intersections:
            if ix.cycle.state(self.time) != LightState.AMBER:
                continue
            start = self.time - (ix.cycle.amber - ix.cycle.time_to_change(self.time))
            if self._amber_go.get(ix.id, -1.0) == start or self._amber_go.get(-ix.id - 1, -1.0) == start:
                continue
            dist = ix.stop_line - e.front_s
            go = dist < e.speed**2 / (2 * AMBER_DECEL) + 0.3 * e.speed
            self._amber_go[ix.id if go else -ix.id - 1] = start

    def ego_goes_on_amber(self, ix: Intersection) -> bool:
        start = self.time - (ix.cycle.amber - ix.cycle.time_to_change(self.time))
        return abs(self._amber_go.get(ix.id, -1.0) - start) < 1e-6

    # ------------------------------------------------------------------ agent queries
    def _curve_limit(self, s: float, v: float, direction: int = 1) -> float:
        ds = float(self.road.s[1] - self.road.s[0])
        reach = 2.5 * v + 10.0
        a, b = (s, s + reach) if direction > 0 else (s - reach, s)
        i, j = max(int(a / ds), 0), min(int(b / ds) + 1, len(self._curv))
        if j <= i:
            return 20.0
        k = float(self._curv[i:j].max())
        return math.sqrt(CURVE_LAT_ACCEL / max(k, 1e-6))

    def curve_speed(self, agent: Agent) -> float:
        if not agent.on_route:
            return 20.0
        return self._curve_limit(agent.s, agent.speed, agent.direction)

    def leader_of(self, agent: Agent, time: float) -> Leader | None:
        """The nearest thing ahead of ``agent`` it must not run into (see ``behavior``)."""
        best: Leader | None = None

        def consider(gap: float, speed: float = 0.0, accel: float = 0.0) -> None:
            nonlocal best
            if best is None or gap < best.gap:
                best = Leader(gap, speed, accel)

        if isinstance(agent, CrossVehicle):
            front = agent.s + agent.length / 2
            ix = agent.intersection
            st = ix.cycle.cross_state(time)
            dist = agent.stop_s - front
            if dist > -0.5 and (st == LightState.RED or (
                    st == LightState.AMBER and dist > agent.speed**2 / (2 * AMBER_DECEL))):
                consider(max(dist, 0.05))
            for o in self.agents:
                if o is not agent and o.active and o.path is agent.path and o.s > agent.s:
                    consider(o.s - o.length / 2 - front, o.speed, o.accel)
            return best
        if not agent.on_route:
            return None
        dirn = agent.direction
        front = agent.s + dirn * agent.length / 2
        corridor = (agent.move.d_to if isinstance(agent, Vehicle) and agent.move is not None else agent.d)
        half = agent.width / 2 + 0.3
        for o in self.agents:
            if o is agent or not o.active or not o.on_route or o.kind != agent.kind:
                continue
            if isinstance(o, Pedestrian):
                continue
            ahead = (o.s - agent.s) * dirn
            if ahead <= 0.0 or ahead > 90.0:
                continue
            lat = abs(o.d - corridor) - o.width / 2
            if isinstance(o, ParkedVehicle) and not o.pulled_out and dirn > 0:
                if self.pass_offset_needed(o) <= MAX_PASS_OFFSET:
                    continue   # passable: the follower shifts left (lateral target, below)
                lat = -1.0
            if lat < half:
                consider(ahead - o.length / 2 - agent.length / 2, o.speed if o.direction == dirn else 0.0,
                         o.accel)
        # the ego as an obstacle
        e = self.ego
        ahead_e = ((e.front_s + e.rear_s) / 2 - agent.s) * dirn
        if 0.0 < ahead_e < 90.0 and abs(e.d - corridor) - EGO_HALF_WIDTH < half:
            consider(ahead_e - 2.1 - agent.length / 2, e.speed if dirn > 0 else 0.0)
        if dirn > 0:
            for ix in self.layout.intersections:
                dist = ix.stop_line - front
                if dist < -0.5 or dist > 80.0:
                    continue
                st = ix.cycle.state(time)
                can_stop = dist > agent.speed**2 / (2 * AMBER_DECEL)
                if st == LightState.RED or (st == LightState.AMBER and can_stop):
                    consider(max(dist - 0.5, 0.05))
            for sl in self.road.stop_lines:
                dist = sl - front
                waits = isinstance(agent, Vehicle) and not self._stopped_at(agent, sl, time)
                if -0.5 < dist < 60.0 and waits:
                    consider(max(dist - 0.5, 0.05))
        for p in self.agents:
            if isinstance(p, Pedestrian) and p.active and self._ped_blocks(p, corridor, half):
                ahead = (p.s - agent.s) * dirn - agent.length / 2
                if 0.0 < ahead < 60.0:
                    consider(max(ahead - 3.0, 0.05))
        return best

    @staticmethod
    def _stopped_at(agent: Vehicle, s_line: float, time: float) -> bool:
        """A vehicle stands 1 s within 6 m of a stop line before it goes (the stop rule)."""
        done, since = agent.stops_done, agent.stop_since
        if s_line in done:
            return True
        front = agent.s + agent.length / 2
        if agent.speed < 0.1 and 0.0 < s_line - front < 6.0:
            since.setdefault(s_line, time)
            if time - since[s_line] >= 1.0:
                done.add(s_line)
                return True
        else:
            since.pop(s_line, None)
        return False

    def _ped_blocks(self, p: Pedestrian, corridor: float, half: float) -> bool:
        """The pedestrian is in (or about to walk into) the corridor ``corridor +- half`` [m]."""
        if p.walk in (WalkState.WAITING, WalkState.DONE):
            return False
        margin = half + 0.6
        if p.sign > 0:
            return p.d < corridor + margin
        return p.d > corridor - margin

    # ------------------------------------------------------------------ ego queries (expert)
    def pass_offset_at(self, s: float) -> float:
        """[m] left shift of a same-direction vehicle's lane centre at route ``s`` that passes the
        passable parked vehicles (the ego's expert uses the same bumps)."""
        bumps = self._parked_bumps()
        return float(bump_offset(bumps, s)) if bumps else 0.0

    def _parked_bumps(self) -> tuple[Bump, ...]:
        out = []
        for a in self.agents:
            if isinstance(a, ParkedVehicle) and a.active and not a.pulled_out:
                need = self.pass_offset_needed(a)
                if 0.0 < need <= MAX_PASS_OFFSET:
                    rear, front = a.s - a.length / 2, a.s + a.length / 2
                    out.append(Bump(rear - 15.0, rear - 2.0, front + 1.0, front + 12.0, need,
                                    int(Reason.PARKED_VEHICLE)))
        return tuple(out)

    def pass_offset_needed(self, parked: Agent) -> float:
        """[m] left offset of the ego's path that passes ``parked`` with ``PASS_CLEARANCE``."""
        left_edge = parked.d + parked.width / 2
        return max(0.0, left_edge + PASS_CLEARANCE + EGO_HALF_WIDTH)

    def view(self, time: float) -> TrafficView:
        """What the expert reacts to now (route coordinates of the ego's front bumper)."""
        e = self.ego
        lw = self.lane_width
        stops: list[StopTarget] = []
        bumps: list[Bump] = []
        speed_cap: float | None = None
        green: float | None = None
        turn: tuple[float, int] | None = None
        for ix in self.layout.intersections:
            dist = ix.stop_line - e.front_s
            if -0.3 < dist < 90.0:
                st = ix.cycle.state(time)
                occupied = any(isinstance(a, CrossVehicle) and a.active and self._in_box(a, ix, 1.0)
                               for a in self.agents)
                if st == LightState.RED:
                    stops.append(StopTarget(ix.stop_line, int(Reason.RED_LIGHT)))
                elif st == LightState.AMBER and not self.ego_goes_on_amber(ix):
                    stops.append(StopTarget(ix.stop_line, int(Reason.AMBER_LIGHT)))
                elif occupied:
                    stops.append(StopTarget(ix.stop_line, int(Reason.GREEN_LIGHT), standing_ok=False))
                elif dist < 25.0:
                    green = ix.stop_line
            elif -15.0 < dist <= -0.3 and ix.cycle.state(time) == LightState.GREEN:
                green = ix.stop_line
            if ix.turn != 0 and -2.0 < ix.s_in - e.front_s < 30.0 + 2.0 * e.speed:
                turn = (ix.s_in, ix.turn)
        lead: LeadView | None = None
        for a in self.agents:
            if not a.active:
                continue
            if isinstance(a, Pedestrian):
                if self._ped_blocks(a, 0.0, lw / 2 - 0.3 + 0.3):
                    cw = next((c for c in self.layout.crosswalks if c.id == a.crosswalk_id), None)
                    line = (cw.s - cw.width / 2 - 1.0) if cw is not None else a.s - 3.0
                    if line > e.front_s - 0.5:
                        stops.append(StopTarget(line, int(Reason.PEDESTRIAN), standing_ok=False))
                continue
            if isinstance(a, ParkedVehicle) and not a.pulled_out:
                need = self.pass_offset_needed(a)
                rear, front = a.s - a.length / 2, a.s + a.length / 2
                if front < e.rear_s - 2.0:
                    continue
                if need > MAX_PASS_OFFSET and rear > e.front_s - 0.5:
                        stops.append(StopTarget(rear - 3.0, int(Reason.PARKED_VEHICLE)))
                continue
            if not a.on_route:
                continue
            if a.direction < 0:   # oncoming: shy away when it comes over the centre line
                inner = a.d - a._half_extent_lateral(a.heading())
                gap = a.s - a.length / 2 - e.front_s
                if inner < lw / 2 + 0.3 and -5.0 < gap < 60.0:
                    shift = max(-MAX_SHY_OFFSET, min(0.0, inner - 1.0 - EGO_HALF_WIDTH))
                    meet = e.front_s + max(gap, 0.0) * e.speed / max(e.speed + a.speed, 0.5)
                    bumps.append(Bump(meet - 18.0, meet - 6.0, meet + 6.0, meet + 14.0, shift,
                                      int(Reason.ONCOMING)))
                    speed_cap = 6.0
                continue
            # vehicles ahead in our path (same direction)
            rear = a.s - a.length / 2
            if rear < e.front_s - 0.5 or rear > e.front_s + 90.0:
                continue
            half = a._half_extent_lateral(a.heading())
            committed = isinstance(a, CutInVehicle) and a.move is not None
            in_path = abs(a.d) - half < EGO_HALF_WIDTH + 0.3 or committed
            if in_path and (lead is None or rear < lead.rear_s):
                lead = LeadView(a.id, rear, a.speed, a.accel, a.cut_in_time)
        bumps += [b for b in self._parked_bumps() if b.s3 > e.rear_s - 2.0]
        return TrafficView(stops=tuple(stops), lead=lead, bumps=tuple(bumps), green_light_s=green,
                           turn=turn, speed_cap=speed_cap, time=time)

    def _in_box(self, a: Agent, ix: Intersection, margin: float) -> bool:
        return any(ix.contains(x, y, margin) for x, y in a.corners())

    # ------------------------------------------------------------------ scene queries
    def states(self, time: float) -> list[AgentState]:
        lw = self.lane_width
        out = []
        for a in self.agents:
            if not a.active:
                continue
            st = a.state(lw, time)
            if not a.on_route:   # cross traffic: route coordinates when near the ego
                ex = self.route.pose(self.ego.s, self.ego.d)
                if math.hypot(st.x - ex[0], st.y - ex[1]) < 40.0:
                    hint = int(self.ego.s / (self.road.s[1] - self.road.s[0]))
                    pr = self.road.project(st.x, st.y, hint=hint)
                    st = replace(st, s=pr.s, d=pr.d, in_ego_lane=abs(pr.d) - st.width / 2 < lw / 2)
            out.append(st)
        return out

    def light_views(self, time: float) -> list[LightView]:
        out = []
        for ix in self.layout.intersections:
            x, y, h = self.route.pose(ix.stop_line, 0.0)
            out.append(LightView(ix.id, ix.cycle.state(time), ix.cycle.time_to_change(time), ix.stop_line,
                                 x, y, h, ix.cycle.cross_state(time)))
        return out

    def crosswalk_views(self) -> list[CrosswalkView]:
        out = []
        for c in self.layout.crosswalks:
            x, y, h = self.route.pose(c.s, self.lane_width / 2)
            out.append(CrosswalkView(c.id, c.s, c.width, x, y, h))
        return out

    def colliding(self, ego_corners: list[tuple[float, float]], cx: float, cy: float) -> list[Agent]:
        """Active agents whose footprint overlaps the ego's (corners, centre (cx, cy) in world)."""
        hits = []
        for a in self.agents:
            if not a.active:
                continue
            x, y, _ = a.pose()
            if (x - cx) ** 2 + (y - cy) ** 2 > (3.5 + a.length) ** 2:
                continue
            if rectangles_overlap(ego_corners, a.corners()):
                hits.append(a)
        return hits


def bump_offset(bumps: tuple[Bump, ...], s: np.ndarray | float) -> np.ndarray:
    """[m] lateral offset of the ego's path at route ``s`` (largest left + largest right bump)."""
    s = np.asarray(s, dtype=np.float64)
    pos = np.zeros_like(s)
    neg = np.zeros_like(s)
    for b in bumps:
        up = np.clip((s - b.s0) / max(b.s1 - b.s0, 1e-6), 0.0, 1.0)
        down = np.clip((b.s3 - s) / max(b.s3 - b.s2, 1e-6), 0.0, 1.0)
        w = np.minimum(up * up * (3 - 2 * up), down * down * (3 - 2 * down))
        v = b.amplitude * w
        if b.amplitude >= 0:
            pos = np.maximum(pos, v)
        else:
            neg = np.minimum(neg, v)
    return pos + neg


__all__ = ["Traffic", "bump_offset", "smoothstep"]
