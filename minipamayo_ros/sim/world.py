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

from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from minipamayo_ros.geometry import Pose2D
from minipamayo_ros.pose_history import OdometrySample
from minipamayo_ros.sim.camera import CameraConfig
from minipamayo_ros.sim.expert import Expert, ExpertConfig, ExpertPlan, SceneView
from minipamayo_ros.sim.metrics import (
    STANDSTILL_MPS,
    EpisodeMetrics,
    MetricsTracker,
    corner_offsets,
    rectangles_overlap,
)
from minipamayo_ros.sim.odometry import OdometryModel, OdometryNoise
from minipamayo_ros.sim.render import Renderer, palette_for_seed
from minipamayo_ros.sim.road import Obstacle, Road, RoadConfig, generate_road
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


class World:
    """The simulator core. Units SI; poses of base_link (rear axle) in the world/odom frame."""

    def __init__(self, seed: int, config: WorldConfig | None = None, road: Road | None = None) -> None:
        """The world of ``seed``; ``road`` replaces the seed's generated road (e.g. a test track)."""
        self.seed = int(seed)
        self.config = cfg = config or WorldConfig()
        self.road = road if road is not None else generate_road(self.seed, cfg.road)
        self.vehicle = KinematicBicycle(cfg.vehicle)
        self.expert = Expert(self.road, replace(cfg.expert, wheelbase=cfg.vehicle.wheelbase), cfg.body)
        self.renderer = Renderer(cfg.camera, palette_for_seed(self.seed), self.seed)
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

    # ------------------------------------------------------------------ queries
    @property
    def done(self) -> bool:
        """The car reached the end of the usable road."""
        return bool(self.proj.s >= self.road.length - self.config.end_margin)

    @property
    def yaw_rate(self) -> float:
        return float(self.vehicle.yaw_rate(self.state))

    def scene(self) -> SceneView:
        return SceneView(
            stop_lines=[st.s for st in self._stops if not st.released and not st.passed],
            obstacles=[o.obstacle for o in self._obstacles if o.present],
            last_cleared_stop=self._last_cleared_stop,
        )

    def active_obstacles(self) -> list[Obstacle]:
        return [o.obstacle for o in self._obstacles if o.present]

    def odometry(self) -> OdometrySample:
        """Odometry as a robot would report it (noise/drift per ``config.odometry``)."""
        return self.odometry_model.sample(self.time)

    def ground_truth(self) -> OdometrySample:
        return OdometrySample(self.time, self.state.pose, self.state.speed, self.yaw_rate)

    def render(self) -> NDArray[np.uint8]:
        """Camera frame ``(H, W, 3)`` uint8 RGB at the current time."""
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
        offsets = corner_offsets(self.proj.d, pose.yaw - self.proj.heading, self.proj.curvature,
                                 self._corners)
        self.departed = max(abs(o) for o in offsets) > self.road.lane_width / 2
        self.colliding = self._check_collision()
        self.tracker.update(dt, cross_track=self.proj.d, speed=v, yaw_rate=yaw_rate,
                            departed=self.departed, colliding=self.colliding)

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
