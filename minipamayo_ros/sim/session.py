"""The simulator node's loop without ROS: sim clock, command arbitration, safety stop, episodes.

:class:`SimSession` owns the :class:`~minipamayo_ros.sim.world.World` and a monotonic sim clock
(it keeps running across episode resets, so consumers on ``use_sim_time`` never see time jump
back). The node calls :meth:`SimSession.advance` from its wall-clock timer with
``elapsed_wall * real_time_factor`` and publishes what comes back.

Commands: ``auto`` takes ``/vla/control`` and falls back to ``/cmd_vel`` only when no
ControlCommand came within ``command_timeout``. With no command at all for ``command_timeout``
the car is braked to a stop (speed command 0, steering held): a dead stack must not leave the
simulated car driving.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from minipamayo_ros.pose_history import OdometrySample
from minipamayo_ros.sim.config import SimulatorConfig
from minipamayo_ros.sim.expert import ExpertPlan
from minipamayo_ros.sim.metrics import EpisodeMetrics
from minipamayo_ros.sim.scene import SceneState
from minipamayo_ros.sim.world import World

CLOCK_START = 1.0        # [s] first sim time (time 0 means "no clock yet" to ROS nodes)
EXPERT_PERIOD = 0.02     # [s] autopilot command period
_EPS = 1e-9


@dataclass(frozen=True)
class OdomOutput:
    stamp: float
    odom: OdometrySample    # as reported (noise/drift per config)
    truth: OdometrySample   # ground truth


@dataclass(frozen=True)
class FrameOutput:
    stamp: float
    image: NDArray[np.uint8]
    plan: ExpertPlan        # ground-truth plan at the image stamp (stamp in node time)
    scene: SceneState | None = None  # ground-truth scene (agents, lights) when ``publish_ground_truth``


@dataclass(frozen=True)
class EpisodeSummary:
    seed: int
    episode: int
    reached_end: bool
    metrics: EpisodeMetrics

    def line(self) -> str:
        """One log line with the figures that matter."""
        m = self.metrics
        return (f"episode {self.episode} (seed {self.seed}) {'completed' if self.reached_end else 'ended'}: "
                f"{m.distance_m:.0f} m in {m.duration_s:.1f} s, cross-track RMS {m.cross_track_rms_m:.3f} m "
                f"(max {m.cross_track_max_m:.2f}), lane departures {m.lane_departures}, collisions "
                f"{m.collisions}, stop-line violations {m.stop_line_violations}, stops "
                f"{m.stops_completed}, max lateral accel {m.max_lateral_accel_mps2:.1f} m/s^2, longest "
                f"standstill {m.longest_standstill_s:.1f} s")


@dataclass
class StepOutputs:
    odom: list[OdomOutput] = field(default_factory=list)
    frames: list[FrameOutput] = field(default_factory=list)
    resets: list[int] = field(default_factory=list)  # seeds of episodes started during the advance
    finished: list[EpisodeSummary] = field(default_factory=list)  # episodes ended during the advance


@dataclass
class _Command:
    steer: float = 0.0
    speed: float = 0.0
    stamp: float = -math.inf  # sim time of receipt


class SimSession:
    """World + clock + commands; everything the node does except talking ROS."""

    def __init__(self, cfg: SimulatorConfig) -> None:
        self.cfg = cfg
        self.world_config = cfg.world_config()
        self.physics_dt = 1.0 / cfg.physics_rate_hz
        self.episode = 0
        self._offset = CLOCK_START
        self._pending = 0.0
        self._control = _Command()
        self._twist = _Command()
        self._expert_cmd = (0.0, 0.0)
        self._next_expert = 0.0
        self.last_source = "none"
        self.braking = False
        self.last_episode: EpisodeSummary | None = None
        self._start(cfg.seed)

    # ------------------------------------------------------------------ episodes
    def _start(self, seed: int) -> None:
        self.seed = int(seed)
        self.world = World(self.seed, self.world_config)
        # outputs at whole multiples of their periods after the episode start
        self._next_odom = 1.0 / self.cfg.odom_rate_hz
        self._next_frame = 1.0 / self.cfg.camera_rate_hz
        self._next_expert = 0.0
        self._steer_hold = 0.0

    def reset(self, seed: int | None = None) -> int:
        """Start a new episode (same seed if None); the clock keeps running. Returns the seed.

        The summary of the episode that ends is kept in :attr:`last_episode`.
        """
        self.last_episode = EpisodeSummary(self.seed, self.episode, self.world.done, self.world.metrics())
        self._offset = self.sim_time
        self.episode += 1
        self._start(self.seed if seed is None else seed)
        return self.seed

    def reconfigure(self, cfg: SimulatorConfig) -> None:
        """Apply changed writable parameters (a new seed starts a new episode)."""
        old, self.cfg = self.cfg, cfg
        if cfg.seed != old.seed:
            self.reset(cfg.seed)

    def anchor(self, now: float) -> None:
        """Move this session's clock to ``now`` [s] without simulating the gap (a simulator that
        follows another one's /clock starts, or re-synchronises, at that clock's time)."""
        self._offset = now - self.world.time
        self._pending = 0.0

    @property
    def sim_time(self) -> float:
        """[s] ROS clock (published on /clock): monotonic across episodes."""
        return self._offset + self.world.time

    # ------------------------------------------------------------------ commands
    def command_control(self, steer: float, speed: float) -> bool:
        """A ControlCommand (front-wheel angle [rad], speed [m/s]); False if rejected."""
        if not (math.isfinite(steer) and math.isfinite(speed)):
            return False
        self._control = _Command(steer, max(0.0, speed), self.sim_time)
        return True

    def command_twist(self, speed: float, yaw_rate: float) -> bool:
        """A Twist (linear.x [m/s], angular.z [rad/s]); steering from the bicycle model."""
        if not (math.isfinite(speed) and math.isfinite(yaw_rate)):
            return False
        if abs(speed) > 0.1:
            steer = math.atan(self.world_config.vehicle.wheelbase * yaw_rate / speed)
        else:  # curvature undefined at standstill: keep the wheel where it is
            steer = self.world.state.steer
        self._twist = _Command(steer, max(0.0, speed), self.sim_time)
        return True

    def _fresh(self, cmd: _Command) -> bool:
        return self.sim_time - cmd.stamp <= self.cfg.command_timeout + _EPS

    def current_command(self) -> tuple[float, float, str]:
        """(steer [rad], speed [m/s], source) applied now; source ``timeout`` = braking to a stop."""
        src = self.cfg.control_source
        if src == "expert":
            if self.world.time + _EPS >= self._next_expert:
                self._expert_cmd = self.world.expert_command()
                self._next_expert = self.world.time + EXPERT_PERIOD
            return self._expert_cmd[0], self._expert_cmd[1], "expert"
        if src in ("auto", "vla_control") and self._fresh(self._control):
            return self._control.steer, self._control.speed, "vla_control"
        if src in ("auto", "cmd_vel") and self._fresh(self._twist):
            return self._twist.steer, self._twist.speed, "cmd_vel"
        return self.world.state.steer, 0.0, "timeout"

    # ------------------------------------------------------------------ loop
    def advance(self, sim_seconds: float) -> StepOutputs:
        """Run the physics for ``sim_seconds`` (whole steps; the remainder carries over)."""
        out = StepOutputs()
        self._pending += max(0.0, sim_seconds)
        cfg = self.cfg
        while self._pending >= self.physics_dt - _EPS:
            self._pending -= self.physics_dt
            steer, speed, source = self.current_command()
            self.last_source = source
            self.braking = source == "timeout"
            self.world.step(steer, speed, self.physics_dt)
            w = self.world
            if w.time + _EPS >= self._next_odom:
                self._next_odom += 1.0 / cfg.odom_rate_hz
                stamp = self.sim_time
                out.odom.append(OdomOutput(stamp, _restamp(w.odometry(), stamp),
                                           _restamp(w.ground_truth(), stamp)))
            if w.time + _EPS >= self._next_frame:
                self._next_frame += 1.0 / cfg.camera_rate_hz
                stamp = self.sim_time
                plan = w.expert_plan()
                scene = w.scene_state() if cfg.publish_ground_truth else None
                out.frames.append(FrameOutput(stamp, w.render(), _replan_stamp(plan, stamp), scene))
            if self._episode_over():
                out.resets.append(self.reset(self.seed + cfg.reset_seed_step))
                assert self.last_episode is not None
                out.finished.append(self.last_episode)
        return out

    def _episode_over(self) -> bool:
        if not self.cfg.auto_reset:
            return False
        if self.cfg.episode_seconds > 0.0 and self.world.time >= self.cfg.episode_seconds - _EPS:
            return True
        return self.world.done


def _restamp(s: OdometrySample, stamp: float) -> OdometrySample:
    return OdometrySample(stamp, s.pose, s.speed, s.yaw_rate)


def _replan_stamp(p: ExpertPlan, stamp: float) -> ExpertPlan:
    return ExpertPlan(stamp=stamp, points=p.points, speeds=p.speeds, event=p.event, caption=p.caption,
                      reason=p.reason)
