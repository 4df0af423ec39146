"""Simulator node parameters: one frozen dataclass, declared as ROS parameters by the node.

Defaults match ``config/simulator.yaml`` (a test checks). :meth:`SimulatorConfig.world_config`
turns them into the core's :class:`~minipamayo_ros.sim.world.WorldConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from minipamayo_ros.params import ParameterError, param
from minipamayo_ros.sim.camera import CameraConfig
from minipamayo_ros.sim.expert import ExpertConfig
from minipamayo_ros.sim.odometry import OdometryNoise
from minipamayo_ros.sim.road import RoadConfig
from minipamayo_ros.sim.scenario import ScenarioError, ScenarioMix, load_mix
from minipamayo_ros.sim.world import WorldConfig

CONTROL_SOURCES = ("auto", "vla_control", "cmd_vel", "expert")


@dataclass(frozen=True)
class SimulatorConfig:
    """Parameters of the simulator node (SI units; sim time unless said otherwise)."""

    seed: int = param(0, "world seed (road, scene, colours); setting it starts a new episode", min=0,
                      max=2**31 - 1)
    real_time_factor: float = param(1.0, "sim seconds per wall-clock second; a tick catches up at most "
                                    "0.1 s of wall time (a stalled process slows the sim instead of "
                                    "jumping)", min=0.05, max=50.0)
    camera_rate_hz: float = param(20.0, "camera frame rate (sim time); a multiple of the policy rate, so "
                                  "a 10 Hz policy runs exactly every 2nd frame", "Hz", min=10.0, max=30.0)
    image_width: int = param(256, "camera image width", "px", min=256, max=320, read_only=True)
    image_height: int = param(256, "camera image height", "px", min=256, max=320, read_only=True)
    camera_hfov_deg: float = param(80.0, "camera horizontal field of view", "deg", min=40.0, max=120.0,
                                   read_only=True)
    camera_height: float = param(1.4, "camera height above the ground", "m", min=0.2, max=3.0,
                                 read_only=True)
    camera_pitch: float = param(0.15, "camera downward tilt", "rad", min=-0.2, max=0.6, read_only=True)
    camera_x_offset: float = param(1.5, "camera position ahead of base_link", "m", min=-2.0, max=5.0,
                                   read_only=True)
    odom_rate_hz: float = param(50.0, "odometry publish rate (sim time)", "Hz", min=10.0, max=200.0,
                                read_only=True)
    physics_rate_hz: float = param(100.0, "vehicle model integration rate (sim time)", "Hz", min=100.0,
                                   max=1000.0, read_only=True)
    tick_rate_hz: float = param(100.0, "steady-clock rate of the simulation loop and /clock", "Hz",
                                min=20.0, max=500.0, read_only=True)
    control_source: str = param(
        "auto", "who drives: auto (/vla/control, else /cmd_vel), vla_control, cmd_vel, or expert "
        "(built-in autopilot, no stack needed)", choices=CONTROL_SOURCES)
    command_timeout: float = param(0.5, "no command for this long -> brake to a stop", "s", min=0.05,
                                   max=5.0)
    road_length: float = param(400.0, "length of each generated road", "m", min=200.0, max=5000.0,
                               read_only=True)
    cruise_speed: float = param(8.0, "expert (autopilot and ground-truth plan) cruise speed", "m/s",
                                min=1.0, max=20.0, read_only=True)
    episode_seconds: float = param(0.0, "start a new episode after this long (0 = at the road end)",
                                   "s", min=0.0, max=36000.0)
    auto_reset: bool = param(True, "start a new episode at the road end / after episode_seconds")
    reset_seed_step: int = param(1, "seed increment of an automatic new episode (0 = same road)",
                                 min=0, max=1000)
    odom_speed_noise: float = param(0.0, "white noise on odometry speed", "m/s", min=0.0, max=2.0,
                                    read_only=True)
    odom_yaw_rate_noise: float = param(0.0, "white noise on odometry yaw rate", "rad/s", min=0.0,
                                       max=1.0, read_only=True)
    odom_speed_scale: float = param(1.0, "odometry speed scale error (drift)", min=0.5, max=1.5,
                                    read_only=True)
    odom_yaw_rate_bias: float = param(0.0, "odometry yaw-rate bias (drift)", "rad/s", min=-0.5,
                                      max=0.5, read_only=True)
    odom_frame: str = param("odom", "world frame of /odom", read_only=True)
    base_frame: str = param("base_link", "body frame (rear axle centre)", read_only=True)
    camera_frame: str = param("camera", "frame_id of the camera images", read_only=True)
    publish_ground_truth: bool = param(True, "publish /sim/ground_truth/odom, /sim/expert_trajectory",
                                       read_only=True)
    metrics_rate_hz: float = param(1.0, "rate of /sim/metrics (steady clock)", "Hz", min=0.1, max=10.0,
                                   read_only=True)
    scenario_mix: str = param("classic", "scenario mix of config/scenarios.yaml: which scenario type each "
                              "seed gets (classic = the original empty-road world)", read_only=True)
    scenario: str = param("", "one scenario type for every seed (e.g. pedestrian_crossing); '' = use "
                          "scenario_mix", read_only=True)
    scenario_file: str = param("", "scenario file ('' = the package's config/scenarios.yaml)", read_only=True)

    def __post_init__(self) -> None:
        if self.odom_rate_hz > self.physics_rate_hz:
            raise ParameterError(
                f"parameter 'odom_rate_hz' ({self.odom_rate_hz} Hz) must be <= 'physics_rate_hz' "
                f"({self.physics_rate_hz} Hz): odometry is sampled from physics steps")
        if self.camera_rate_hz > self.physics_rate_hz:
            raise ParameterError("parameter 'camera_rate_hz' must be <= 'physics_rate_hz'")
        self.scenarios()  # a bad scenario selection or file fails at startup

    def scenarios(self) -> ScenarioMix:
        """The scenario mix these parameters select (``sim.scenario``)."""
        try:
            return load_mix(self.scenario_mix, self.scenario, self.scenario_file or None)
        except ScenarioError as e:
            name = "scenario" if self.scenario else "scenario_mix"
            raise ParameterError(f"parameter '{name}' / 'scenario_file': {e}") from None

    def world_config(self) -> WorldConfig:
        """The core configuration these parameters describe."""
        base = WorldConfig()
        return replace(
            base,
            road=RoadConfig(length=self.road_length),
            camera=CameraConfig(width=self.image_width, height=self.image_height,
                                hfov=float(np.deg2rad(self.camera_hfov_deg)),
                                mount_height=self.camera_height, pitch=self.camera_pitch,
                                x_offset=self.camera_x_offset),
            expert=replace(ExpertConfig(), cruise_speed=self.cruise_speed),
            odometry=OdometryNoise(speed_std=self.odom_speed_noise, yaw_rate_std=self.odom_yaw_rate_noise,
                                   speed_scale=self.odom_speed_scale,
                                   yaw_rate_bias=self.odom_yaw_rate_bias),
            physics_dt=1.0 / self.physics_rate_hz,
            scenarios=self.scenarios(),
        )
