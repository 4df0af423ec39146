"""A listener node for closed-loop runs: records what the stack and the simulator publish.

Runs inside the demo / evaluation process (not part of the vehicle stack), in the stack's
namespace: it subscribes the same relative names the stack's nodes use, and of the global
``/diagnostics`` only its own stack's statuses. Everything is stored as plain numbers so
``bringup.report`` (ROS-free) can compute metrics and draw the report.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import String

from minipamayo_ros.bringup.report import is_follower_trajectory_input
from minipamayo_ros.events import Event
from minipamayo_ros.msg import ControlCommand, Explanation, Trajectory
from minipamayo_ros.nodes.conversions import msg_to_trajectory, odometry_to_sample, time_to_sec
from minipamayo_ros.scoring.frames import TOPIC as SCENE_TOPIC
from minipamayo_ros.trajectory import PlannedTrajectory


@dataclass
class Recording:
    """Everything a closed-loop run produced (times in sim seconds unless noted)."""

    truth: list[tuple[float, float, float, float, float]] = field(default_factory=list)  # t,x,y,yaw,v
    trajectories: list[PlannedTrajectory] = field(default_factory=list)
    trajectory_receive_times: list[float] = field(default_factory=list)  # sim time at receipt
    # (t, status, speed, steering, curvature) per control command
    controls: list[tuple[float, int, float, float, float]] = field(default_factory=list)
    control_receive_steady: list[float] = field(default_factory=list)  # [s] time.monotonic() at receipt
    snapshots: list[tuple[np.ndarray, PlannedTrajectory]] = field(default_factory=list)  # image + its plan
    sim_metrics: dict[str, str] = field(default_factory=dict)     # latest /sim/metrics values
    policy_diagnostics: dict[str, str] = field(default_factory=dict)  # latest policy /diagnostics
    text_diagnostics: dict[str, str] = field(default_factory=dict)    # latest text node /diagnostics
    #: latest follower /diagnostics of its trajectory input (received, rejected, rejected.<kind>)
    follower_trajectory_diagnostics: dict[str, str] = field(default_factory=dict)
    #: one dict per /vla/explanation: stamp (= explained trajectory's, sim s), received (sim s),
    #: sequence, event, situation, text, tokens, truncated, generation_ms, event_age_ms
    explanations: list[dict[str, object]] = field(default_factory=list)
    scene_frames: list[str] = field(default_factory=list)  # JSON scene frames (scoring.frames)
    first_sim_time: float | None = None
    last_sim_time: float = 0.0


class RecorderNode(Node):
    """Subscribes to ground truth, trajectories, control, camera, metrics and diagnostics."""

    def __init__(self, snapshot_times: list[float], context: Context | None = None,
                 namespace: str = "", scene_subscription: bool = True) -> None:
        """``scene_subscription`` False: the scene frames come from the caller
        (:meth:`on_scene_frame`; the demo's bag recorder, so that the report scores the bag's frames)."""
        super().__init__("demo_recorder", context=context, namespace=namespace,
                         parameter_overrides=[Parameter("use_sim_time", value=True)])
        self.rec = Recording()
        self._pending_snapshots = sorted(snapshot_times)  # [s] since the first sim time
        self._frames: deque[tuple[float, np.ndarray]] = deque(maxlen=30)
        # the statuses of this stack's nodes on the global /diagnostics (nodes.diagnostics)
        prefix = self.get_namespace().strip("/")
        prefix = f"{prefix}/" if prefix else ""
        self._status_names = {f"{prefix}policy: policy inference": "policy",
                              f"{prefix}text: text explanations": "text"}
        self.create_subscription(Odometry, "sim/ground_truth/odom", self._on_truth, 50)
        self.create_subscription(Trajectory, "vla/trajectory", self._on_trajectory, 10)
        self.create_subscription(ControlCommand, "vla/control", self._on_control, 200)
        self.create_subscription(Image, "camera/image_raw", self._on_image, qos_profile_sensor_data)
        self.create_subscription(DiagnosticArray, "sim/metrics", self._on_sim_metrics, 10)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.create_subscription(Explanation, "vla/explanation", self._on_explanation, 50)
        if scene_subscription:
            self.create_subscription(String, SCENE_TOPIC, self._on_scene, 100)

    def _on_scene(self, msg: String) -> None:
        self.on_scene_frame(msg.data)

    def on_scene_frame(self, text: str) -> None:
        """One scene frame (``scoring.frames`` JSON) as received."""
        self.rec.scene_frames.append(text)

    def sim_time(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def elapsed(self) -> float:
        """Sim seconds since the first ground-truth sample (0 before it)."""
        r = self.rec
        return 0.0 if r.first_sim_time is None else r.last_sim_time - r.first_sim_time

    def _on_truth(self, msg: Odometry) -> None:
        s = odometry_to_sample(msg)
        r = self.rec
        if r.first_sim_time is None:
            r.first_sim_time = s.stamp
        r.last_sim_time = s.stamp
        r.truth.append((s.stamp, s.pose.x, s.pose.y, s.pose.yaw, s.speed))

    def _on_trajectory(self, msg: Trajectory) -> None:
        traj = msg_to_trajectory(msg)
        self.rec.trajectories.append(traj)
        self.rec.trajectory_receive_times.append(self.sim_time())
        if self._pending_snapshots and self.rec.first_sim_time is not None \
                and traj.stamp - self.rec.first_sim_time >= self._pending_snapshots[0]:
            for stamp, image in self._frames:
                if abs(stamp - traj.stamp) < 1e-6:
                    self.rec.snapshots.append((image, traj))
                    self._pending_snapshots.pop(0)
                    break

    def _on_control(self, msg: ControlCommand) -> None:
        self.rec.control_receive_steady.append(time.monotonic())
        self.rec.controls.append((time_to_sec(msg.header.stamp), int(msg.status), msg.speed,
                                  msg.steering_angle, msg.curvature))

    def _on_image(self, msg: Image) -> None:
        if not self._pending_snapshots:
            return
        img = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3).copy()
        self._frames.append((time_to_sec(msg.header.stamp), img))

    def _on_sim_metrics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            self.rec.sim_metrics = {kv.key: kv.value for kv in status.values}

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            node = self._status_names.get(status.name)
            if node == "policy":
                self.rec.policy_diagnostics = {kv.key: kv.value for kv in status.values}
            elif node == "text":
                self.rec.text_diagnostics = {kv.key: kv.value for kv in status.values}
            elif is_follower_trajectory_input(status.name):
                self.rec.follower_trajectory_diagnostics = {kv.key: kv.value for kv in status.values}

    def _on_explanation(self, msg: Explanation) -> None:
        def name(v: int) -> str:
            return Event(v).name if v in Event._value2member_map_ else str(v)

        self.rec.explanations.append({
            "stamp": time_to_sec(msg.header.stamp), "received": self.sim_time(),
            "sequence": int(msg.trajectory_sequence), "event": name(msg.event),
            "situation": name(msg.situation), "text": msg.text, "tokens": int(msg.token_count),
            "truncated": bool(msg.truncated), "generation_ms": round(float(msg.generation_latency_ms), 2),
            "event_age_ms": round(float(msg.event_age_ms), 1)})
