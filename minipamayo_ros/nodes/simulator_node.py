"""Simulator node: the built-in road world on ROS topics, owning the sim clock (see docs/simulator.md).

Thin wiring around :class:`minipamayo_ros.sim.session.SimSession`. A steady-clock timer advances
sim time by ``elapsed * real_time_factor`` (at most ``MAX_ADVANCE_WALL`` of wall time per tick:
if the process stalls, the simulation slows down instead of jumping) and publishes

* ``/clock`` (rosgraph_msgs/Clock, global: one clock per ROS domain) every tick: run every other
  node with ``use_sim_time``;
* ``camera/image_raw`` (sensor_msgs/Image rgb8, ``camera_rate_hz``, sensor-data QoS);
* ``odom`` (nav_msgs/Odometry, ``odom_rate_hz``, odom -> base_link, sensor-data QoS);
* ground truth: ``sim/ground_truth/odom`` (Odometry without noise), ``sim/expert_trajectory``
  (minipamayo_ros/Trajectory: the expert's plan at each image stamp), ``sim/ground_truth/objects``
  (visualization_msgs/MarkerArray: road users, obstacles, traffic lights with their state,
  crosswalks, at each image stamp; ``nodes.scene_markers``), ``sim/ground_truth/scene``
  (std_msgs/String: a JSON scene frame every 50 ms of sim time, what a run is scored from:
  ``scoring.frames``), ``sim/metrics`` (diagnostic_msgs/DiagnosticArray, episode metrics +
  expert event/caption/reason, scenario type).

Subscribes ``vla/control`` (minipamayo_ros/ControlCommand: steering_angle, speed), ``cmd_vel``
(geometry_msgs/Twist) and ``sim/reset`` (std_msgs/Int64: new episode with that seed, or the
current seed if negative). Names without a leading ``/`` resolve in the node's namespace
(``/car7/odom`` under ``car7``): two simulated cars on one domain do not mix.

``use_sim_time:=true`` makes this simulator follow the ``/clock`` of another one (or of a bag)
instead of publishing its own: a second car on the same domain shares the one clock every
``use_sim_time`` node listens to. It then advances its world to each new clock value
(``real_time_factor`` is the clock owner's) and starts at the first clock it sees.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from std_msgs.msg import Int64, String
from visualization_msgs.msg import MarkerArray

from minipamayo_ros.msg import ControlCommand, Trajectory
from minipamayo_ros.nodes.clocks import ros_now, steady_timer
from minipamayo_ros.nodes.conversions import rgb_to_image, sample_to_odometry, sec_to_time, trajectory_to_msg
from minipamayo_ros.nodes.node_main import run_node
from minipamayo_ros.nodes.ros_params import declare_config
from minipamayo_ros.nodes.scene_markers import scene_markers
from minipamayo_ros.params import ParameterError
from minipamayo_ros.safety.log_limit import LogLimiter
from minipamayo_ros.safety.plan_source import new_instance_id
from minipamayo_ros.scoring.frames import TOPIC as SCENE_TOPIC
from minipamayo_ros.scoring.frames import FrameSampler
from minipamayo_ros.sim.config import SimulatorConfig
from minipamayo_ros.sim.session import FrameOutput, OdomOutput, SimSession, StepOutputs

MAX_ADVANCE_WALL = 0.1  # [s] wall time one tick may catch up
MAX_FOLLOW_LAG = 1.0    # [s] of /clock a following simulator may fall behind before it skips ahead
WARN_PERIOD_S = 2.0


class SimulatorNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("simulator", **kwargs)
        #: follow another simulator's /clock (use_sim_time) instead of publishing one
        self.follows_clock = bool(self.get_parameter("use_sim_time").value)
        self._followed: float | None = None  # [s] the /clock value the world was last advanced to
        self._warnings = LogLimiter(WARN_PERIOD_S)
        self.config: SimulatorConfig = declare_config(self, SimulatorConfig, self._on_config)
        cfg = self.config
        self.session = SimSession(cfg)
        self._plan_seq = 0
        # the expert plans name their producer like the policy's: a follower can be pointed at them
        # (trajectory_producer:=/simulator)
        self._producer, self._instance = self.get_fully_qualified_name(), new_instance_id()
        self._frames = 0
        self._last_wall = time.monotonic()
        self._rtf_window: list[tuple[float, float]] = []

        # /clock is global (one per domain); everything else relative to the node's namespace
        self._clock_pub = None if self.follows_clock else self.create_publisher(Clock, "/clock", 10)
        self._image_pub = self.create_publisher(Image, "camera/image_raw", qos_profile_sensor_data)
        self._odom_pub = self.create_publisher(Odometry, "odom", qos_profile_sensor_data)
        self._gt_pub = self._plan_pub = self._objects_pub = self._scene_pub = None
        if cfg.publish_ground_truth:
            self._objects_pub = self.create_publisher(MarkerArray, "sim/ground_truth/objects", 10)
            self._gt_pub = self.create_publisher(Odometry, "sim/ground_truth/odom", 10)
            self._plan_pub = self.create_publisher(Trajectory, "sim/expert_trajectory", 10)
            self._scene_pub = self.create_publisher(String, SCENE_TOPIC, 50)  # reliable: scored
        self._scene_sampler = FrameSampler()
        self._metrics_pub = self.create_publisher(DiagnosticArray, "sim/metrics", 10)
        self.create_subscription(ControlCommand, "vla/control", self._on_control, 10)
        self.create_subscription(Twist, "cmd_vel", self._on_twist, 10)
        self.create_subscription(Int64, "sim/reset", self._on_reset, 10)
        # the loop is a duty cycle on the steady clock (wall time, immune to system clock steps)
        self._timer = steady_timer(self, 1.0 / cfg.tick_rate_hz, self._tick)
        self._metrics_timer = steady_timer(self, 1.0 / cfg.metrics_rate_hz, self._publish_metrics)
        self._publish_clock()
        clock = ("follows /clock (use_sim_time)" if self.follows_clock else
                 f"publishes /clock at real-time factor {cfg.real_time_factor:g}")
        self.get_logger().info(
            f"simulator: seed {cfg.seed}, {cfg.image_width}x{cfg.image_height} px at "
            f"{cfg.camera_rate_hz:g} Hz on {self._image_pub.topic_name}, odom {cfg.odom_rate_hz:g} Hz, "
            f"{clock}, control from {cfg.control_source}, scenario "
            f"{cfg.scenario or 'mix ' + cfg.scenario_mix} ({self.session.world.scenario_name} on seed "
            f"{cfg.seed})")

    # ------------------------------------------------------------------ parameters / inputs
    def _on_config(self, cfg: SimulatorConfig) -> None:
        self.config = cfg
        self.session.reconfigure(cfg)

    def _on_control(self, msg: ControlCommand) -> None:
        if not self.session.command_control(float(msg.steering_angle), float(msg.speed)):
            self._warn("control", "ignoring ControlCommand with non-finite steering/speed")

    def _on_twist(self, msg: Twist) -> None:
        if not self.session.command_twist(float(msg.linear.x), float(msg.angular.z)):
            self._warn("twist", "ignoring cmd_vel with non-finite values")

    def _warn(self, key: str, text: str) -> None:
        """Rate-limited warning per kind (steady clock, like every node's log limits)."""
        if self._warnings.allow(key, time.monotonic()) is not None:
            self.get_logger().warning(text)

    def _on_reset(self, msg: Int64) -> None:
        seed = None if msg.data < 0 else int(msg.data)
        if seed is not None and seed >= 2**31:
            self.get_logger().warning(f"sim/reset seed {seed} out of range (0..2^31-1): ignored")
            return
        seed = self.session.reset(seed)
        if self.session.last_episode is not None:
            self.get_logger().info(self.session.last_episode.line())
        self.get_logger().info(f"episode {self.session.episode}: reset to seed {seed}")

    # ------------------------------------------------------------------ loop
    def _tick(self) -> None:
        now = time.monotonic()
        wall = min(now - self._last_wall, MAX_ADVANCE_WALL)
        self._last_wall = now
        sim_before = self.session.sim_time
        if self.follows_clock:
            step = self._follow_clock()
            if step is None:
                return
        else:
            step = wall * self.config.real_time_factor
        out, scenes = self._advance(step)
        # /clock first: a node on sim time must never see a message stamped after its own "now"
        # (that would make its latency figures negative)
        self._publish_clock()
        for o in out.odom:
            self._publish_odom(o)
        for f in out.frames:
            self._publish_frame(f)
        for scene in scenes:
            self._scene_pub.publish(String(data=scene))  # type: ignore[union-attr]
        for done, seed in zip(out.finished, out.resets, strict=True):
            self.get_logger().info(done.line())
            self.get_logger().info(f"episode {done.episode + 1}: new road, seed {seed}")
        if self.session.braking:
            self._warn("braking", f"no command for > {self.config.command_timeout} s on vla/control or "
                                  "cmd_vel: braking to a stop")
        self._rtf_window = (self._rtf_window + [(now, self.session.sim_time - sim_before)])[-200:]

    def _follow_clock(self) -> float | None:
        """[s] of sim time to advance to reach the followed /clock (None: no /clock yet)."""
        clock = ros_now(self)
        if clock <= 0.0:
            self._warn("no_clock", "use_sim_time: waiting for /clock from another simulator (or "
                                   "`ros2 bag play --clock`) on this ROS domain; none published yet")
            return None
        if self._followed is None or not -MAX_FOLLOW_LAG <= clock - self._followed <= MAX_FOLLOW_LAG:
            if self._followed is not None:
                self.get_logger().warning(f"/clock jumped from {self._followed:.3f} to {clock:.3f} s: "
                                          "following from there")
            self.session.anchor(clock)
            self._followed = clock
            return 0.0
        step, self._followed = max(0.0, clock - self._followed), max(clock, self._followed)
        return step

    def _advance(self, sim_seconds: float) -> tuple[StepOutputs, list[str]]:
        """Advance in pieces that end where a scene frame is due, so that a tick that catches up
        (up to ``MAX_ADVANCE_WALL`` x real-time factor) still yields every frame on time."""
        s, out, scenes = self.session, StepOutputs(), []
        remaining = sim_seconds
        while True:
            chunk = remaining
            if self._scene_pub is not None:
                chunk = min(remaining, max(s.physics_dt, self._scene_sampler.due_in(s.world, s.episode)))
            remaining -= chunk
            part = s.advance(chunk)
            out.odom += part.odom
            out.frames += part.frames
            out.resets += part.resets
            out.finished += part.finished
            if self._scene_pub is not None:
                scene = self._scene_sampler.sample(s.world, s.sim_time, s.episode)
                if scene is not None:
                    scenes.append(scene)
            if remaining <= 1e-9:
                return out, scenes

    def _publish_clock(self) -> None:
        if self._clock_pub is None:
            return
        msg = Clock()
        msg.clock = sec_to_time(self.session.sim_time)
        self._clock_pub.publish(msg)

    def _publish_odom(self, o: OdomOutput) -> None:
        frames = (self.config.odom_frame, self.config.base_frame)
        self._odom_pub.publish(sample_to_odometry(o.odom, *frames, stamp=o.stamp))
        if self._gt_pub is not None:
            self._gt_pub.publish(sample_to_odometry(o.truth, *frames, stamp=o.stamp))

    def _publish_frame(self, f: FrameOutput) -> None:
        self._image_pub.publish(rgb_to_image(f.image, f.stamp, self.config.camera_frame))
        self._frames += 1
        if self._plan_pub is not None:
            self._plan_seq += 1
            plan = replace(f.plan.to_trajectory(self._plan_seq), producer=self._producer,
                           producer_instance=self._instance)
            self._plan_pub.publish(trajectory_to_msg(plan))
        if self._objects_pub is not None and f.scene is not None:
            self._objects_pub.publish(scene_markers(f.scene, self.config.odom_frame, f.stamp))
        self._last_plan = f.plan

    def _publish_metrics(self) -> None:
        s = self.session
        m = s.world.metrics()
        window = self._rtf_window
        rtf = 0.0
        if len(window) >= 2 and window[-1][0] > window[0][0]:
            rtf = sum(d for _, d in window[1:]) / (window[-1][0] - window[0][0])
        plan = getattr(self, "_last_plan", None)
        values = {**m.as_dict(), "seed": s.seed, "episode": s.episode, "sim_time_s": s.sim_time,
                  "achieved_real_time_factor": rtf, "control_source": s.last_source,
                  "frames_published": self._frames,
                  "expert_event": int(plan.event) if plan else -1,
                  "expert_caption": plan.caption if plan else "",
                  "expert_reason": plan.reason.name.lower() if plan else "",
                  "scenario": s.world.scenario_name}
        status = DiagnosticStatus(name="simulator", hardware_id="minipamayo_sim",
                                  level=DiagnosticStatus.WARN if s.braking else DiagnosticStatus.OK,
                                  message="braking: no command" if s.braking else "running")
        status.values = [KeyValue(key=k, value=f"{v:.4g}" if isinstance(v, float) else str(v))
                         for k, v in values.items()]
        arr = DiagnosticArray()
        arr.header.stamp = sec_to_time(s.sim_time)
        arr.status = [status]
        self._metrics_pub.publish(arr)


def main(args: list[str] | None = None) -> int:
    return run_node(SimulatorNode, (ParameterError,), args, config=SimulatorConfig)


if __name__ == "__main__":
    sys.exit(main())
