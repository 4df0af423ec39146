"""Policy node: latest camera frame + odometry history -> /vla/trajectory (see docs/policy.md).

Thin wiring around ``minipamayo_ros.policy``: parameters, message conversion, one worker thread
that takes the camera and odometry subscriptions itself and runs inference on the latest frame
(``nodes.input_thread``: no executor wake-up and no Python message per camera frame, docs/latency.md
§5c), and 1 Hz ``/diagnostics`` plus the parameter services on the executor thread.

Topic names are parameters, relative by default (resolved in the node's namespace:
``/car7/camera/image_raw`` under ``car7``); ``/diagnostics`` is global. Subscribes the camera
(``camera/image_raw``: ``sensor_msgs/Image`` or ``CompressedImage``, sensor-data QoS, depth
``image_qos_depth``) and ``odom`` (``nav_msgs/Odometry``, sensor-data QoS). Publishes
``vla/trajectory`` (Trajectory, reliable keep-last 1, stamp = image stamp), ``vla/path``
(nav_msgs/Path in ``base_link`` for RViz), ``vla/context`` (PolicyContext) and ``/diagnostics``
every ``diagnostics_period`` of the steady clock (inference statistics, plus one status per input
topic: watchdog OK / stale / never received / rate too low, and rejection counters). Messages
become core inputs through ``nodes.conversions`` and ``nodes.image_conversions`` (the functions
the lock-step bag replay calls too; both topics are taken serialized and parsed there): odometry is
validated on arrival (``safety.odometry_input``),
images by cheap checks on arrival (``safety.image_input``: stamp, encoding, ``step * height``,
older than ``max_image_age``; a bad frame never displaces a valid pending one) and by decoding in
the worker; a dropped sample is logged once per 2 s per kind with the field and value.
Startup problems (model missing/corrupt, manifest/graph mismatch, bad parameters) are fatal: the
process logs what to fix and exits with status 2 (``nodes.node_main``).
"""

from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import replace
from typing import Any

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry, Path
from rclpy.clock import ROSClock
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from minipamayo_ros.msg import PolicyContext, Trajectory
from minipamayo_ros.nodes.clocks import ros_now, steady_timer
from minipamayo_ros.nodes.conversions import odometry_fields_from_serialized, trajectory_to_msg
from minipamayo_ros.nodes.diagnostics import diagnostic_name, input_status
from minipamayo_ros.nodes.image_conversions import (
    camera_message_from_serialized,
    compressed_to_frame,
    image_to_frame,
)
from minipamayo_ros.nodes.input_thread import InputThread
from minipamayo_ros.nodes.node_main import WORKER_STOP_TIMEOUT_S, close_worker_then_release, run_node
from minipamayo_ros.nodes.polled_subscription import PolledSubscription, take_queued
from minipamayo_ros.nodes.ros_params import declare_config
from minipamayo_ros.params import ParameterError
from minipamayo_ros.policy.config import PolicyConfig
from minipamayo_ros.policy.model_loader import PolicyModelError
from minipamayo_ros.policy.pipeline import Frame, PipelineSettings, Skip, create_pipeline
from minipamayo_ros.policy.scheduler import LatestFrameScheduler, SchedulerCounts
from minipamayo_ros.policy.stats import PolicyStats, trajectory_latency
from minipamayo_ros.safety.input_monitor import InputMonitor
from minipamayo_ros.safety.log_limit import LogLimiter
from minipamayo_ros.safety.rejection import Rejection
from minipamayo_ros.trajectory import PlannedTrajectory

TRAJECTORY_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                            depth=1)
WARN_PERIOD_S = 2.0


class PolicyNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("policy", **kwargs)
        cfg: PolicyConfig = declare_config(self, PolicyConfig, self._on_config)
        self.config = cfg
        # decode/resize in the worker thread itself: OpenCV's default pool (one thread per core) hands a
        # 0.3 ms resize to pool threads that a busy 2-6 core vehicle computer may not schedule at once;
        # the result is the same (tested bit-identical), only the waiting goes
        cv2.setNumThreads(1)
        self._warnings = LogLimiter(WARN_PERIOD_S)
        self.get_logger().info(f"loading policy model {cfg.manifest_path} (backend {cfg.backend}) ...")
        t0 = time.monotonic()
        # the one constructor the offline closed loop, DAgger and bag replay use too
        self.pipeline = create_pipeline(cfg, logger=self.get_logger(),
                                        producer=self.get_fully_qualified_name())
        self.manifest, self.backend, io = self.pipeline.manifest, self.pipeline.backend, self.pipeline.io
        self.backend_info = self.backend.describe()
        self.get_logger().info(
            f"model {self.manifest.model_id} ready in {time.monotonic() - t0:.1f} s (warmed up): "
            f"input {io.image_size[1]}x{io.image_size[0]} px, context {io.context_dim}, "
            f"{self.backend_info.get('backend')} on {self.backend_info.get('device')}")
        self.stats = PolicyStats(window=cfg.diagnostics_window)
        self._monitor_lock = threading.Lock()  # image arrivals (executor) vs diagnostics
        self.image_monitor = InputMonitor(self.resolve_topic_name(cfg.image_topic), cfg.max_image_age,
                                          cfg.image_min_rate_hz)
        self.odom_monitor = InputMonitor(self.resolve_topic_name(cfg.odom_topic), cfg.odom_stale_after,
                                         cfg.odom_min_rate_hz)

        self._traj_pub = self.create_publisher(Trajectory, cfg.trajectory_topic, TRAJECTORY_QOS)
        self._path_pub = self.create_publisher(Path, cfg.path_topic, 1) if cfg.path_topic else None
        self._context_pub = (self.create_publisher(PolicyContext, cfg.context_topic, 5)
                             if cfg.context_topic and io.context_dim > 0 else None)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

        # the latest-frame schedule (rate cap, drops); the worker thread and diagnostics share it
        self._sched_lock = threading.Lock()
        self._sched: LatestFrameScheduler[Frame] = LatestFrameScheduler(cfg.max_rate_hz, cfg.rate_slack,
                                                                        time.monotonic())
        image_qos = QoSProfile(reliability=qos_profile_sensor_data.reliability,
                               durability=qos_profile_sensor_data.durability,
                               history=HistoryPolicy.KEEP_LAST, depth=cfg.image_qos_depth)
        odom_qos = QoSProfile(reliability=qos_profile_sensor_data.reliability,
                              history=HistoryPolicy.KEEP_LAST, depth=cfg.odom_qos_depth)
        self._compressed = cfg.image_transport == "compressed"
        image_type = CompressedImage if self._compressed else Image
        if self.get_parameter("use_sim_time").value:
            # /clock is taken by the executor, and an input stamped by the next /clock must not be
            # checked against the previous one (a "future" stamp): the inputs go through the executor
            # too, in arrival order with /clock; the worker thread only runs the frames
            odom_sub: Any = self.create_subscription(Odometry, cfg.odom_topic, self._on_odom, odom_qos,
                                                     raw=True)
            image_sub: Any = self.create_subscription(image_type, cfg.image_topic, self._on_image_in_executor,
                                                      image_qos, raw=True)
            self._odom_sub, inputs = odom_sub, []
            self.input_driver = "executor (use_sim_time)"
        else:
            image_sub = PolledSubscription(self, image_type, cfg.image_topic, image_qos, raw=True)
            odom_sub = PolledSubscription(self, Odometry, cfg.odom_topic, odom_qos, raw=True)
            # odometry first at each wake-up: a frame never runs ahead of the odometry that came before it
            inputs = [(odom_sub, self._on_odom), (image_sub, self._on_image)]
            self.input_driver = "worker thread"
        self._inputs = InputThread(self, inputs, self._step, "policy-worker").start()
        self._diag_timer = steady_timer(self, cfg.diagnostics_period, self._publish_diagnostics)
        # the resolved names (after namespace and remapping), as `ros2 topic` shows them
        self.get_logger().info(
            f"policy: {image_sub.topic_name} ({cfg.image_transport}) + {odom_sub.topic_name} -> "
            f"{self._traj_pub.topic_name} at <= {cfg.max_rate_hz:g} Hz "
            f"(inputs taken by the {self.input_driver})")

    # --- parameters ---------------------------------------------------------------------------
    def _on_config(self, cfg: PolicyConfig) -> None:
        self.config = cfg
        with self._sched_lock:
            self._sched.budget.set_rate(cfg.max_rate_hz, cfg.rate_slack, time.monotonic())
        self._inputs.wake()
        # one snapshot, swapped whole: a frame in inference finishes on the settings it started with
        self.pipeline.configure(PipelineSettings.from_config(cfg))
        with self._monitor_lock:
            self.image_monitor.stale_after = cfg.max_image_age
            self.image_monitor.min_rate_hz = cfg.image_min_rate_hz
            self.odom_monitor.stale_after = cfg.odom_stale_after
            self.odom_monitor.min_rate_hz = cfg.odom_min_rate_hz

    # --- worker thread: inputs as they arrive, then inference on the latest frame -----------------
    @property
    def thread_failure(self) -> BaseException | None:
        """What ended the worker thread, if anything (raised by ``node_main.run_node``)."""
        return self._inputs.failure

    def _on_image(self, raw: bytes) -> None:
        """One serialized camera message (``Image`` or ``CompressedImage`` by ``image_transport``).

        Cheap checks first: a bad frame must not displace a valid pending one (decoding waits for
        the frame that runs); frames the rate cap drops are never decoded."""
        cfg, steady = self.config, time.monotonic()
        msg = camera_message_from_serialized(raw, self._compressed)
        if self._compressed:
            self._offer(*compressed_to_frame(msg, self._ros_now(), cfg.max_stamp_future, cfg.max_image_age,
                                             received_steady=steady))
        else:
            self._offer(*image_to_frame(msg, self._ros_now(), cfg.max_stamp_future, cfg.max_image_age,
                                        cfg.encoding_override, received_steady=steady))

    def _on_image_in_executor(self, raw: bytes) -> None:
        """Under ``use_sim_time``: the odometry queued before the image first (rclpy's executor takes
        one message per subscription per wake-up: after this process was held up, an image was handled
        while odometry that arrived before it still waited, and the frame was skipped), then the
        image, then the worker is woken for it."""
        for msg in take_queued(self._odom_sub, self.config.odom_qos_depth):
            self._on_odom(msg)
        self._on_image(raw)
        self._inputs.wake()

    def offer_frame(self, frame: Frame) -> bool:
        """Offer a checked frame to the latest-frame schedule from any thread, waking the worker
        (False: dropped by the rate cap)."""
        taken = self._schedule(frame)
        self._inputs.wake()
        return taken

    def _schedule(self, frame: Frame) -> bool:
        with self._sched_lock:
            return self._sched.offer(frame, time.monotonic())

    def _offer(self, frame: Frame, rejection: Rejection | None) -> None:
        with self._monitor_lock:
            if rejection is None:
                self.image_monitor.accepted(frame.received)
                text = None
            else:
                text = self.image_monitor.rejected(rejection, frame.received, time.monotonic())
        if rejection is not None:
            if text is not None:
                self.get_logger().warning(f"{text} [{frame.description}]")
            return
        self._schedule(frame)  # the worker thread itself, or the executor that wakes it next

    def _on_odom(self, raw: bytes) -> None:
        now = self._ros_now()
        if self.pipeline.observe_clock(now):
            with self._monitor_lock:
                self.image_monitor.clock_reset()
                self.odom_monitor.clock_reset()
            self._warn("clock", "node clock jumped back (sim restart / bag loop): odometry history cleared")
        rejection = self.pipeline.add_odometry(odometry_fields_from_serialized(raw), now)
        with self._monitor_lock:
            if rejection is None:
                self.odom_monitor.accepted(now)
                return
            text = self.odom_monitor.rejected(rejection, now, time.monotonic())
        if text is not None:
            self.get_logger().warning(text)

    def _step(self) -> float:
        """Run the frame the schedule lets start now, if any; seconds until it may (``inf``: none
        pending). Frames that arrive during inference are offered before the worker counts as idle
        again (the newest becomes pending, as the schedule's rules say)."""
        with self._sched_lock:
            frame, wait = self._sched.next_item(time.monotonic())
        if frame is None:
            return wait
        try:
            self._process(frame)
        except Exception as exc:  # one bad frame or a transient backend error must not stop the node
            self._on_worker_error(exc)
        finally:
            self._inputs.drain()
            with self._sched_lock:
                self._sched.done()
        return 0.0

    def _ros_now(self) -> float:
        """[s] ROS clock: stamps and their ages (the rate cap and diagnostics: steady, nodes/clocks.py)."""
        return ros_now(self)

    def _process(self, frame: Frame) -> None:
        result = self.pipeline.run(frame, self._ros_now)
        if isinstance(result, Skip):
            self.stats.record_skip(result.category, result.reason)
            self._warn(result.category, f"no trajectory: {result.reason}")
            return
        traj = result.output.trajectory
        msg = trajectory_to_msg(traj)
        # steady-clock work inside the node (+ the transport delay when measurable): true in every
        # clock mode, unlike a difference of sim-time stamps (policy/stats.py)
        clock = self.get_clock()  # a node's clock is a ROSClock (use_sim_time switches it)
        end_to_end_ms, transport_ms = trajectory_latency(
            frame.received_steady, time.monotonic(), frame.received, frame.stamp,
            sim_time=isinstance(clock, ROSClock) and clock.ros_time_is_active)
        msg.end_to_end_latency_ms = float(end_to_end_ms)
        self._traj_pub.publish(msg)
        self.stats.record_published(time.monotonic(), traj.inference_latency_ms, end_to_end_ms,
                                    result.preprocess_ms, transport_ms=transport_ms, queue_ms=result.queue_ms)
        if self._context_pub is not None:
            ctx = PolicyContext(header=msg.header, trajectory_sequence=msg.sequence, model_id=msg.model_id)
            ctx.context = result.output.context.astype(np.float32)
            self._context_pub.publish(ctx)
        if self._path_pub is not None and self._path_pub.get_subscription_count() > 0:  # RViz only
            self._path_pub.publish(_path_msg(traj, msg))

    def _on_worker_error(self, exc: BaseException) -> None:
        self.stats.record_error(f"{type(exc).__name__}: {exc}")
        self._warn("error", f"inference failed: {type(exc).__name__}: {exc}")

    def _warn(self, key: str, text: str) -> None:
        """Rate-limited warning, per kind of problem (one bad-image flood does not hide odometry),
        with how many were held back since the last one."""
        more = self._warnings.allow(key, time.monotonic())
        if more is not None:
            self.get_logger().warning(text + (f" ({more} more since the last message)" if more else ""))

    # --- diagnostics --------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        counts = self.frame_counts()
        report = self.stats.report(time.monotonic(), received=counts.received,
                                   dropped_busy=counts.dropped_busy, dropped_rate=counts.dropped_rate,
                                   max_rate_hz=self.config.max_rate_hz, backend=self.backend_info,
                                   warmed_up=self.backend.warmed_up)
        name = diagnostic_name(self)
        status = DiagnosticStatus(level=bytes([report.level]), name=f"{name}: policy inference",
                                  message=report.message, hardware_id=self.manifest.model_id)
        status.values = [KeyValue(key=k, value=v) for k, v in report.values.items()]
        now = self._ros_now()
        with self._monitor_lock:
            inputs = [input_status(name, m, now) for m in (self.image_monitor, self.odom_monitor)]
        arr = DiagnosticArray(status=[status, *inputs])
        arr.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(arr)

    def close(self, timeout: float = WORKER_STOP_TIMEOUT_S) -> bool:
        """Stop inference; free the backend once the frame in progress has returned (False: still
        running after ``timeout`` [s], nothing freed; ``run_node`` then exits non-zero)."""
        return close_worker_then_release(self._inputs.close, self.backend.close, self.get_logger(),
                                         "policy inference", timeout)

    def frame_counts(self) -> SchedulerCounts:
        """Frames received / started / dropped so far (a copy)."""
        with self._sched_lock:
            return replace(self._sched.counts)


def _path_msg(traj: PlannedTrajectory, msg: Trajectory) -> Path:
    """The waypoints as nav_msgs/Path (z = 0, heading along the path) for RViz."""
    path = Path(header=msg.header)
    pts = np.vstack(([0.0, 0.0], traj.points))
    yaw = np.arctan2(np.diff(pts[:, 1]), np.diff(pts[:, 0]))
    for (x, y), h in zip(traj.points, yaw, strict=True):
        pose = PoseStamped(header=msg.header)
        pose.pose.position.x, pose.pose.position.y = float(x), float(y)
        pose.pose.orientation.z, pose.pose.orientation.w = math.sin(h / 2.0), math.cos(h / 2.0)
        path.poses.append(pose)
    return path


def main(args: list[str] | None = None) -> int:
    return run_node(PolicyNode, (PolicyModelError, ParameterError), args, config=PolicyConfig)


if __name__ == "__main__":
    sys.exit(main())
