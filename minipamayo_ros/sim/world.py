"""One simulated episode: road, vehicle, scenario state (stop lines, obstacles), camera, metrics.

Deterministic for a seed and a command sequence. Time starts at 0 s per episode. ``step``
integrates the kinematic bicycle at ``physics_dt`` (100 Hz default) and updates the scenario:

* a stop line is *completed* (the traffic rule) once the car has stood still (< 0.1 m/s) with
  its front within 6 m of the line for ``stop_wait`` s; crossing it later is legal, crossing it
  before is a violation. The expert (the labels) drives on only after ``expert_stop_hold`` s of
  standing, a margin over the rule (see the field).
* an obstacle *moves away* once the car has stood still with its front within 10 m of it for
  ``obstacle_wait`` s (a blocked lane would otherwise end the episode).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from minipamayo_ros.geometry import Pose2D
from minipamayo_ros.pose_history import OdometrySample
from minipamayo_ros.sim.agents.fault import collision_fault
from minipamayo_ros.sim.agents.kinematics import Agent, AgentKind, AgentState, Role, box_corners
from minipamayo_ros.sim.agents.objects import LightState
from minipamayo_ros.sim.camera import CameraConfig
from minipamayo_ros.sim.expert import Expert, ExpertConfig, ExpertPlan, SceneView
from minipamayo_ros.sim.metrics import (
    STANDSTILL_MPS,
    EpisodeMetrics,
    Incident,
    MetricsTracker,
    corner_offsets,
    rectangles_overlap,
    route_time_to_collision,
    time_to_collision,
)
from minipamayo_ros.sim.odometry import OdometryModel, OdometryNoise
from minipamayo_ros.sim.render import Renderer, palette_for_seed
from minipamayo_ros.sim.road import Obstacle, Road, RoadConfig, generate_road
from minipamayo_ros.sim.scenario import CLASSIC, ScenarioMix, ScenarioSpec
from minipamayo_ros.sim.scene import SceneState
from minipamayo_ros.sim.vehicle import KinematicBicycle, VehicleBody, VehicleParams, VehicleState

_STILL = STANDSTILL_MPS  # [m/s] "standing still"


@dataclass(frozen=True)
class WorldConfig:
    road: RoadConfig = field(default_factory=RoadConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    vehicle: VehicleParams = field(default_factory=VehicleParams)
    body: VehicleBody = field(default_factory=VehicleBody)
    expert: ExpertConfig = field(default_factory=ExpertConfig)
    odometry: OdometryNoise = field(default_factory=OdometryNoise)
    physics_dt: float = 0.01       # [s] integration step (>= 100 Hz)
    stop_wait: float = 0.5         # [s] standing time that completes a stop line (the rule)
    #: [s] standing time after which the expert leaves a stop line (the labels). Inside the policy's
    #: 1 s odometry history (state_features), so "go" is decidable from the inputs: with the former
    #: 2 s, standing 1 s and 2 s looked identical, the labels disagreed and a policy could wait at
    #: a stop line forever. Above ``stop_wait``, so a policy that goes a little early still stood
    #: the rule's time.
    expert_stop_hold: float = 0.8
    obstacle_wait: float = 3.0     # [s] standing time after which an obstacle moves away
    start_s: float = 5.0           # [m] start arc length
    start_offset: float = 0.0      # [m] lateral start offset (left +)
    start_heading: float = 0.0     # [rad] start heading relative to the road
    start_speed: float = 0.0       # [m/s]
    end_margin: float = 85.0       # [m] episode is done this far before the road end
    #: which scenario type a seed gets (``sim.scenario``); None = the classic world
    scenarios: ScenarioMix | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.physics_dt <= 0.01:
            raise ValueError(f"physics_dt must be in (0, 0.01] s (>= 100 Hz), got {self.physics_dt}")


@dataclass
class _StopLine:
    s: float
    completed: bool = False   # the rule is satisfied (crossing is legal)
    released: bool = False    # the expert drives on
    passed: bool = False
    still_since: float | None = None


@dataclass
class _ObstacleState:
    obstacle: Obstacle
    present: bool = True
    still_since: float | None = None


_SAMPLE_DT = 0.1  # [s] period of the time-to-collision and stall samples


class World:
    """The simulator core. Units SI; poses of base_link (rear axle) in the world/odom frame."""

    def __init__(self, seed: int, config: WorldConfig | None = None, road: Road | None = None) -> None:
        """The world of ``seed``; ``road`` replaces the seed's generated road (e.g. a test track,
        always classic: no traffic)."""
        self.seed = int(seed)
        self.config = cfg = config or WorldConfig()
        spec = cfg.scenarios.for_seed(self.seed) if cfg.scenarios is not None and road is None else None
        #: the seed's scenario type (classic: ``World.traffic`` is None and everything is as before)
        self.scenario: ScenarioSpec | None = spec if spec is not None and not spec.classic else None
        self.traffic = None
        if self.scenario is not None:
            from minipamayo_ros.sim.layout import traffic_road
            from minipamayo_ros.sim.lighting import lighting_for_seed
            from minipamayo_ros.sim.render_traffic import TrafficRenderer
            from minipamayo_ros.sim.traffic import Traffic

            self.road, layout, spots = traffic_road(self.seed, self.scenario, cfg.road.length,
                                                    cfg.road.lane_width, cfg.road.ds)
            self.traffic = Traffic(self.seed, self.scenario, self.road, layout, spots,
                                   ego_front_s=cfg.start_s + cfg.body.front, ego_length=cfg.body.length)
            self.lighting = lighting_for_seed(self.seed, self.scenario.lighting)
            self.renderer: Renderer = TrafficRenderer(cfg.camera, palette_for_seed(self.seed), self.seed,
                                                      self.lighting)
        else:
            self.road = road if road is not None else generate_road(self.seed, cfg.road)
            self.renderer = Renderer(cfg.camera, palette_for_seed(self.seed), self.seed)
        self.vehicle = KinematicBicycle(cfg.vehicle)
        self.expert = Expert(self.road, replace(cfg.expert, wheelbase=cfg.vehicle.wheelbase), cfg.body)
        self.odometry_model = OdometryModel(cfg.odometry, self.seed)
        self.tracker = MetricsTracker()
        self._corners = [tuple(c) for c in cfg.body.corners()]
        self.time = 0.0
        self._stops = [_StopLine(s) for s in self.road.stop_lines]
        self._obstacles = [_ObstacleState(o) for o in self.road.obstacles]
        self._last_cleared_stop: float | None = None
        p = self.road.points_at(cfg.start_s, cfg.start_offset)
        yaw = float(self.road.heading_at(cfg.start_s)) + cfg.start_heading
        self.state = VehicleState(pose=Pose2D(float(p[0]), float(p[1]), yaw), speed=cfg.start_speed)
        self.odometry_model.reset(self.state.pose)
        self.proj = self.road.project(p[0], p[1], hint=int(np.searchsorted(self.road.s, cfg.start_s)))
        self.departed = False
        self.colliding = False
        self._contacts: set[int] = set()     # agent ids in contact now
        self._next_sample = _SAMPLE_DT
        self._light_front: dict[int, float] = {}
        if self.traffic is not None:
            self._update_traffic_ego()

    # ------------------------------------------------------------------ queries
    @property
    def done(self) -> bool:
        """The car reached the end of the usable road."""
        return bool(self.proj.s >= self.road.length - self.config.end_margin)

    @property
    def yaw_rate(self) -> float:
        return float(self.vehicle.yaw_rate(self.state))

    @property
    def scenario_name(self) -> str:
        return self.scenario.name if self.scenario is not None else CLASSIC

    def scene(self) -> SceneView:
        return SceneView(
            stop_lines=[st.s for st in self._stops if not st.released and not st.passed],
            obstacles=[o.obstacle for o in self._obstacles if o.present],
            last_cleared_stop=self._last_cleared_stop,
            traffic=self.traffic.view(self.time) if self.traffic is not None else None,
        )

    def ego_state(self) -> AgentState:
        """The ego's footprint (centre of its box, heading, speed) as an agent state."""
        b, p = self.config.body, self.state.pose
        off = b.front - b.length / 2
        return AgentState(0, AgentKind.VEHICLE, Role.EGO, p.x + off * np.cos(p.yaw),
                          p.y + off * np.sin(p.yaw),
                          p.yaw, b.length, b.width, 1.5, self.state.speed, 0.0, self.proj.s + off,
                          self.proj.d, not self.departed, True)

    def scene_state(self) -> SceneState:
        """Ground truth of the scene now (agents, lights, stop lines, crosswalks; ``sim.scene``)."""
        agents: list[AgentState] = []
        for i, ob in enumerate(self._obstacles):
            if not ob.present:
                continue
            o = ob.obstacle
            c = self.road.points_at(o.s, o.d)
            agents.append(AgentState(-(i + 1), AgentKind.OBSTACLE, Role.OBSTACLE, float(c[0]), float(c[1]),
                                     float(self.road.heading_at(o.s)), o.length, o.width, o.height, 0.0, 0.0,
                                     o.s, o.d))
        tr = self.traffic
        if tr is None:
            return SceneState(self.time, CLASSIC, self.road.lane_width, self.ego_state(), tuple(agents),
                              stop_lines=tuple(self.road.stop_lines))
        agents += tr.states(self.time)
        return SceneState(self.time, self.scenario_name, self.road.lane_width, self.ego_state(),
                          tuple(agents),
                          tuple(tr.light_views(self.time)), tuple(self.road.stop_lines),
                          tuple(tr.crosswalk_views()))

    def incidents(self) -> list[Incident]:
        """Contacts and rule events of the episode so far (``sim.metrics.Incident``)."""
        return list(self.tracker.incidents)

    def active_obstacles(self) -> list[Obstacle]:
        return [o.obstacle for o in self._obstacles if o.present]

    def odometry(self) -> OdometrySample:
        """Odometry as a robot would report it (noise/drift per ``config.odometry``)."""
        return self.odometry_model.sample(self.time)

    def ground_truth(self) -> OdometrySample:
        return OdometrySample(self.time, self.state.pose, self.state.speed, self.yaw_rate)

    def render(self) -> NDArray[np.uint8]:
        """Camera frame ``(H, W, 3)`` uint8 RGB at the current time."""
        if self.traffic is not None:
            return self.renderer.render_traffic(  # type: ignore[attr-defined]
                self.road, self.state.pose, self.proj.s, self.active_obstacles(), self.road.stop_lines,
                self.traffic, self.time)
        return self.renderer.render(self.road, self.state.pose, self.proj.s, self.active_obstacles(),
                                    self.road.stop_lines)

    def expert_plan(self) -> ExpertPlan:
        """Ground-truth 2 s plan in base_link at the current time (stamp = world time)."""
        return self.expert.plan(self.time, self.state.pose, self.state.speed, self.proj, self.scene())

    def expert_command(self) -> tuple[float, float]:
        """(front-wheel angle [rad], speed [m/s]) the expert would command now."""
        return self.expert.command(self.state.pose, self.state.speed, self.proj, self.scene())

    def metrics(self) -> EpisodeMetrics:
        return self.tracker.summary()

    # ------------------------------------------------------------------ dynamics
    def step(self, steer_cmd: float, speed_cmd: float, dt: float) -> None:
        """Advance ``dt`` [s] holding the command (front-wheel angle [rad], speed [m/s])."""
        if not (np.isfinite(steer_cmd) and np.isfinite(speed_cmd)):
            raise ValueError(f"non-finite command steer={steer_cmd} speed={speed_cmd}")
        h = self.config.physics_dt
        n = max(1, int(round(dt / h)))
        for _ in range(n):
            self._substep(steer_cmd, speed_cmd, dt / n)

    def _substep(self, steer_cmd: float, speed_cmd: float, dt: float) -> None:
        self.state = self.vehicle.step(self.state, steer_cmd, speed_cmd, dt)
        self.time += dt
        pose, v = self.state.pose, self.state.speed
        self.proj = self.road.project(pose.x, pose.y, hint=self.proj.index)
        yaw_rate = self.yaw_rate
        self.odometry_model.update(pose, v, yaw_rate, dt)
        self._update_scenario()
        if self.traffic is not None:
            self._traffic_substep(dt, v, yaw_rate)
            return
        offsets = corner_offsets(self.proj.d, pose.yaw - self.proj.heading, self.proj.curvature,
                                 self._corners)
        self.departed = max(abs(o) for o in offsets) > self.road.lane_width / 2
        was_colliding = self.colliding
        self.colliding = self._check_collision()
        if self.colliding and not was_colliding:
            moving = v >= _STILL
            self.tracker.contact(Incident(self.time, "collision", agent_kind="obstacle",
                                          agent_role="obstacle", at_fault=moving,
                                          reason="ego" if moving else "ego_standing", ego_speed=v),
                                 count=False)
        self.tracker.update(dt, cross_track=self.proj.d, speed=v, yaw_rate=yaw_rate,
                            departed=self.departed, colliding=self.colliding)
        self._samples(v)

    # ------------------------------------------------------------------ traffic
    def _update_traffic_ego(self) -> None:
        b = self.config.body
        assert self.traffic is not None
        self.traffic.set_ego(self.proj.s, self.proj.d, self.proj.s + b.front, self.proj.s - b.rear_overhang,
                             self.state.speed)

    def _traffic_substep(self, dt: float, v: float, yaw_rate: float) -> None:
        tr = self.traffic
        assert tr is not None
        self._update_traffic_ego()
        tr.step(dt)
        # lane departure: footprint corners against the lane lines; in tight turns (intersections,
        # |kappa| > 0.05 1/m) each corner projected onto the road, where the small-angle model errs
        p = self.state.pose
        b = self.config.body
        mine = box_corners(p.x + (b.front - b.length / 2) * math.cos(p.yaw),
                           p.y + (b.front - b.length / 2) * math.sin(p.yaw), p.yaw, b.length, b.width)
        lw2 = self.road.lane_width / 2
        if abs(self.proj.curvature) > 0.05:
            hint = self.proj.index
            self.departed = any(abs(self.road.project(x, y, hint=hint).d) > lw2 for x, y in mine)
        else:
            offsets = corner_offsets(self.proj.d, p.yaw - self.proj.heading, self.proj.curvature,
                                     self._corners)
            self.departed = max(abs(o) for o in offsets) > lw2
        front = self.proj.s + self.config.body.front
        for ix in tr.layout.intersections:
            before = self._light_front.get(ix.id, -1e9)
            if before < ix.stop_line <= front:
                self.tracker.light_passed(self.time, ix.cycle.state(self.time) == LightState.RED, v)
            self._light_front[ix.id] = front
        obstacle_hit = self._check_collision()
        ego = self.ego_state()
        touching: dict[int, Agent | None] = {a.id: a for a in tr.colliding(mine, ego.x, ego.y)}
        if obstacle_hit:
            touching[-1] = None
        for aid, agent in touching.items():
            if aid in self._contacts:
                continue
            if agent is None:
                fault, kind, role = v >= _STILL, "obstacle", "obstacle"
                why = "ego" if fault else "ego_standing"
            else:
                other = agent.state(self.road.lane_width, self.time)
                p = self.state.pose
                fault, why = collision_fault(ego, (p.x, p.y), not self.departed, other, self.time)
                kind, role = other.kind.name.lower(), other.role.name.lower()
            self.tracker.contact(Incident(self.time, "collision", aid, kind, role, fault, why, v))
        self._contacts = set(touching)
        self.colliding = bool(touching)
        self.tracker.update(dt, cross_track=self.proj.d, speed=v, yaw_rate=yaw_rate,
                            departed=self.departed, colliding=False)
        self._samples(v)

    def _samples(self, v: float) -> None:
        """10 Hz: time-to-collision (moving) and the stall test (standing: would the expert drive?)."""
        if self.time + 1e-9 < self._next_sample:
            return
        self._next_sample += _SAMPLE_DT
        standing = v < _STILL
        if standing:
            _, v_cmd = self.expert_command()
            # from standstill the expert's command is its first acceleration step (0.45 m/s), never
            # its cruise speed: above the follower's planned-stop speed (0.3 m/s) it would move
            self.tracker.stall_sample(_SAMPLE_DT, True, v_cmd > 0.3)
            return
        self.tracker.stall_sample(_SAMPLE_DT, False, False)
        ego = self.ego_state()
        c, s = np.cos(ego.yaw), np.sin(ego.yaw)
        p = self.state.pose
        on_road, off_road = [], []
        for o in self._ttc_candidates():
            if (o.x - p.x) * c + (o.y - p.y) * s <= 0.0 or (o.x - ego.x) ** 2 + (o.y - ego.y) ** 2 > 50.0**2:
                continue
            if np.isfinite(o.s):   # along the road: no false conflicts in curves
                rel = o.yaw - float(self.road.heading_at(o.s))
                on_road.append((o.s, o.d, o.speed * np.cos(rel), o.speed * np.sin(rel), o.length, o.width))
            else:
                off_road.append((o.x, o.y, o.yaw, o.speed, o.length, o.width))
        rel = self.state.pose.yaw - self.proj.heading
        if on_road:
            self.tracker.ttc(route_time_to_collision(
                (ego.s, ego.d, v * np.cos(rel), v * np.sin(rel), ego.length, ego.width), on_road))
        if off_road:
            self.tracker.ttc(time_to_collision((ego.x, ego.y, ego.yaw, v, ego.length, ego.width), off_road))

    def _ttc_candidates(self) -> list[AgentState]:
        out: list[AgentState] = []
        for ob in self._obstacles:
            if ob.present and abs(ob.obstacle.s - self.proj.s) < 50.0:
                o = ob.obstacle
                c = self.road.points_at(o.s, o.d)
                out.append(AgentState(-1, AgentKind.OBSTACLE, Role.OBSTACLE, float(c[0]), float(c[1]),
                                      float(self.road.heading_at(o.s)), o.length, o.width, o.height, 0.0,
                                      0.0, o.s, o.d))
        if self.traffic is not None:
            out += [a.state(self.road.lane_width, self.time) for a in self.traffic.agents if a.active]
        return out

    def _update_scenario(self) -> None:
        front = self.proj.s + self.config.body.front
        still = self.state.speed < _STILL
        for st in self._stops:
            if st.passed:
                continue
            if front > st.s:
                st.passed = True
                self.tracker.stop_line_passed(st.completed)
                self._last_cleared_stop = st.s
                continue
            if st.released:
                continue
            if still and st.s - front < 6.0:
                st.still_since = self.time if st.still_since is None else st.still_since
                stood = self.time - st.still_since + 1e-9
                if stood >= self.config.stop_wait and not st.completed:
                    st.completed = True
                    self._last_cleared_stop = st.s
                st.released = stood >= self.config.expert_stop_hold
            else:
                st.still_since = None
        for ob in self._obstacles:
            if not ob.present:
                continue
            gap = ob.obstacle.s - ob.obstacle.length / 2 - front
            if still and -1.0 < gap < 10.0:
                ob.still_since = self.time if ob.still_since is None else ob.still_since
                if self.time - ob.still_since >= self.config.obstacle_wait - 1e-9:
                    ob.present = False
            else:
                ob.still_since = None

    def _footprint(self) -> list[tuple[float, float]]:
        pts = self.state.pose.transform_points(np.array(self._corners))
        return [tuple(p) for p in pts]

    def _check_collision(self) -> bool:
        near = [o.obstacle for o in self._obstacles
                if o.present and abs(o.obstacle.s - self.proj.s) < 15.0]
        if not near:
            return False
        mine = self._footprint()
        for ob in near:
            yaw = float(self.road.heading_at(ob.s))
            centre = self.road.points_at(ob.s, ob.d)
            box = Pose2D(float(centre[0]), float(centre[1]), yaw).transform_points(np.array(
                [[-ob.length / 2, -ob.width / 2], [ob.length / 2, -ob.width / 2],
                 [ob.length / 2, ob.width / 2], [-ob.length / 2, ob.width / 2]]))
            if rectangles_overlap(mine, [tuple(p) for p in box]):
                return True
        return False
