"""Follower node: pure pursuit at ``rate_hz`` on the latest /vla/trajectory (see docs/follower.md).

Thin wiring around :class:`minipamayo_ros.control.follower.Follower`: parameters, message
conversion and the control tick -- on wall time in its own thread on the steady clock
(``periodic_thread``: rclpy's executor costs more CPU per wake-up than the tick), under
``use_sim_time`` an executor timer on the ROS clock (so /clock drives it) -- beside one
SingleThreadedExecutor for diagnostics, the graph check and parameters, and nothing else in this
process, so that the tick is not delayed by other Python work (the GIL).

Topic names are relative, resolved in the node's namespace (``/car7/odom`` under ``car7``);
``/diagnostics`` is global. Subscribes ``vla/trajectory`` (reliable) and ``odom`` (sensor-data QoS),
both taken by the tick (``PolledSubscription``: no executor wake-up per message; odometry
serialized, parsed by ``conversions.odometry_fields_from_serialized``). Publishes every
tick ``vla/control`` (ControlCommand) and, while they have subscribers, ``vla/lookahead_point``
(geometry_msgs/PointStamped, base_link, for RViz) and, per ``cmd_vel_type``, ``cmd_vel``
(geometry_msgs/Twist or TwistStamped: linear.x = speed, angular.z = speed * curvature)
— one preallocated message of each, refilled per tick; and
``/diagnostics`` every ``diagnostics_period`` (steady clock): the control state, one status per input topic
(watchdog OK / stale / never received / rate too low, rejection counters), the trajectory source
(ERROR naming another producer whose plans were rejected, or more than one publisher on the topic:
published at once) and the control loop's own timing on the steady clock (tick interval / work
percentiles, late ticks: WARN) with the process priority obtained (``scheduling_policy`` etc.:
real-time where permitted, docs/follower.md).

Only the plans of one producer are followed: ``trajectory_producer`` resolved in this node's
namespace (default ``<namespace>/policy``; ``safety.plan_source``), and only plans that pass the
consistency and physics checks (``safety.plan_checks``); a rejected plan leaves the last good one
in place until it goes stale.

Every input passes the safety core before it is stored (``minipamayo_ros.safety``); a dropped
sample is counted and logged once per 2 s per kind with the field and value. A command that fails
the output guard is replaced by the FAULT_STOP command (logged, counted in /diagnostics).

Stopping the node (SIGINT, SIGTERM, an exception, ``destroy_node()``) first publishes one
zero-speed command (status SHUTDOWN, see ``Follower.shutdown_command``) on ``vla/control`` and
``cmd_vel`` and waits up to :data:`STOP_ACK_TIMEOUT` for reliable subscribers to acknowledge it
(guarantees per failure: docs/follower.md, "What the vehicle receives when something fails").
"""

from __future__ import annotations

import math
import sys
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PointStamped, Twist, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from minipamayo_ros.control.config import FollowerConfig
from minipamayo_ros.control.follower import ControlStatus, Follower, FollowerCommand
from minipamayo_ros.latency import LoopTiming
from minipamayo_ros.msg import ControlCommand, Trajectory
from minipamayo_ros.nodes.clocks import ros_now, steady_timer
from minipamayo_ros.nodes.conversions import (
    fill_command_msg,
    msg_to_trajectory_fields,
    odometry_fields_from_serialized,
    sec_to_time,
    set_time,
)
from minipamayo_ros.nodes.diagnostics import diagnostic_name, input_status, status_msg
from minipamayo_ros.nodes.node_main import run_node
from minipamayo_ros.nodes.polled_subscription import NeverScheduled, PolledSubscription
from minipamayo_ros.nodes.ros_params import declare_config
from minipamayo_ros.params import ParameterError
from minipamayo_ros.periodic_thread import PeriodicThread
from minipamayo_ros.realtime import PriorityResult, apply_process_priority
from minipamayo_ros.safety.input_monitor import ERROR, OK, WARN, InputMonitor
from minipamayo_ros.safety.log_limit import LogLimiter
from minipamayo_ros.safety.plan_source import SourceMonitor, resolve_producer
from minipamayo_ros.safety.rejection import Rejection

ODOM_MAX_RATE_HZ = 200.0  # [Hz] fastest odometry the tick's queue holds (vehicles: 50-100 Hz)
TRAJECTORY_MAX_RATE_HZ = 20.0  # [Hz] fastest trajectories the tick's queue holds (the policy: 5-10 Hz)
BASE_FRAME = "base_link"
STOP_ACK_TIMEOUT = 0.5  # [s] wait for subscribers to acknowledge the shutdown stop command
TICK_STOP_TIMEOUT = 1.0  # [s] wait for a control tick in progress before the shutdown stop command
WARN_PERIOD_S = 2.0  # [s] wall clock: each kind of repeated warning at most this often
GRAPH_CHECK_PERIOD = 0.2  # [s] how often the publishers on the trajectory topic are counted
EVENT_REPORT_PERIOD = 0.2  # [s] wall clock: /diagnostics published on an event at most this often


def _depth(max_rate_hz: float, tick_hz: float, at_least: int = 1) -> int:
    """Reader queue depth holding two ticks' worth of messages at ``max_rate_hz`` (a late tick)."""
    return max(at_least, 2 * math.ceil(max_rate_hz / tick_hz))


def odometry_qos(rate_hz: float) -> QoSProfile:
    """Sensor-data QoS (best effort), deep enough for the odometry of two ticks."""
    return QoSProfile(reliability=qos_profile_sensor_data.reliability, history=HistoryPolicy.KEEP_LAST,
                      durability=qos_profile_sensor_data.durability,
                      depth=_depth(ODOM_MAX_RATE_HZ, rate_hz, qos_profile_sensor_data.depth))


def trajectory_qos(rate_hz: float) -> QoSProfile:
    """Reliable keep-last, deep enough for the trajectories of two ticks."""
    return QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                      depth=_depth(TRAJECTORY_MAX_RATE_HZ, rate_hz))


class FollowerNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("follower", **kwargs)
        # the tick may run in its own thread (below): it and the executor's callbacks (diagnostics,
        # graph check, parameters) take this lock; re-entrant: a tick publishes diagnostics itself
        self._lock = threading.RLock()
        self.config: FollowerConfig = declare_config(self, FollowerConfig, self._on_config)
        # the one producer whose plans are followed ("policy" of this namespace unless configured)
        producer = resolve_producer(self.config.trajectory_producer, self.get_namespace())
        self.follower = Follower(self.config, producer=producer)
        self._last_status: ControlStatus | None = None
        self._stop_sent = False
        self._last_speed = 0.0  # [m/s] of the last command published by tick()
        self._last_cmd: FollowerCommand | None = None
        self._warnings = LogLimiter(WARN_PERIOD_S)
        self.loop_timing = LoopTiming(self.config.period)  # steady clock: missed deadlines, any clock mode
        self._late_reported = 0
        # relative names: resolved in the node's namespace (/car7/vla/trajectory under namespace car7)
        self.odom_monitor = InputMonitor(self.resolve_topic_name("odom"), self.config.odom_stop_after,
                                         self.config.odom_min_rate_hz)
        self.trajectory_monitor = InputMonitor(self.resolve_topic_name("vla/trajectory"),
                                               self.config.trajectory_timeout,
                                               self.config.trajectory_min_rate_hz)

        # the inputs are taken by the tick (not one executor wake-up per message: docs/latency.md)
        self._traj_sub = PolledSubscription(self, Trajectory, "vla/trajectory",
                                            trajectory_qos(self.config.rate_hz))
        # the resolved name (namespace, remapping): the graph check counts its publishers
        self.source = SourceMonitor(producer, self._traj_sub.topic_name)
        self._publishers_seen = 0
        self._event_report_due = False
        self._last_event_report = -math.inf  # [s] time.monotonic()
        # serialized: the tick parses the nine fields it uses (conversions.odometry_fields_from_serialized)
        self._odom_sub = PolledSubscription(self, Odometry, "odom", odometry_qos(self.config.rate_hz),
                                            raw=True)
        self._control_pub = self.create_publisher(ControlCommand, "vla/control", 10)
        # display / monitoring outputs: their QoS event handlers (incompatible-QoS warnings) are never
        # run, so that the executor does not wait on them at every wake-up; the command outputs keep
        # theirs (docs/latency.md, "CPU per node")
        inert = NeverScheduled()
        self._lookahead_pub = self.create_publisher(PointStamped, "vla/lookahead_point", 1,
                                                    callback_group=inert)
        self._twist_pub = None
        if self.config.cmd_vel_type == "twist":
            self._twist_pub = self.create_publisher(Twist, "cmd_vel", 10)
        elif self.config.cmd_vel_type == "twist_stamped":
            self._twist_pub = self.create_publisher(TwistStamped, "cmd_vel", 10)
        # one message of each kind, refilled every tick (publish serialises it at once)
        self._control_msg = ControlCommand()
        self._control_msg.header.frame_id = BASE_FRAME
        self._point_msg = PointStamped()
        self._point_msg.header.frame_id = BASE_FRAME
        self._twist_msg: Twist | TwistStamped = (TwistStamped() if self.config.cmd_vel_type == "twist_stamped"
                                                 else Twist())
        if isinstance(self._twist_msg, TwistStamped):
            self._twist_msg.header.frame_id = BASE_FRAME
        # the control tick: on a vehicle (system time) a thread on the steady clock, not an executor
        # timer (rclpy's executor costs more CPU per wake-up than the tick: docs/latency.md); under
        # use_sim_time an executor timer on the ROS clock, as /clock is what paces the controller's
        # sample period (a simulation at any real-time factor is controlled at rate_hz of its own
        # time). Chosen at start. Diagnostics are a duty cycle: steady clock.
        self._timer = None
        self._tick_thread: PeriodicThread | None = None
        if self.get_parameter("use_sim_time").value:
            self._timer = self.create_timer(self.config.period, self.tick)
            self.tick_driver = "ROS timer on /clock (use_sim_time)"
        else:
            self._tick_thread = PeriodicThread(self.config.period, self.tick, "follower_tick")
            self.tick_driver = "own thread, steady clock"
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10, callback_group=inert)
        self._diag_timer = steady_timer(self, self.config.diagnostics_period, self.publish_diagnostics)
        self._graph_timer = steady_timer(self, GRAPH_CHECK_PERIOD, self._check_graph)  # a duty cycle
        # the resolved names (after namespace and remapping), as `ros2 topic` shows them
        self.get_logger().info(
            f"follower at {self.config.rate_hz:g} Hz: {self.trajectory_monitor.topic} + "
            f"{self.odom_monitor.topic} -> {self._control_pub.topic_name}, trajectory_timeout "
            f"{self.config.trajectory_timeout} s, stop_decel {self.config.stop_decel} m/s^2, cmd_vel: "
            f"{self.config.cmd_vel_type}; follows {producer!r}; tick: {self.tick_driver}")
        self.priority = self._apply_process_priority()
        if self._tick_thread is not None:
            # the thread starts when an executor first spins the node (as a timer would start
            # firing), from the spinning thread, after the priority request: it inherits both
            self._start_ticking_gc = self.create_guard_condition(self._start_ticking)
            self._start_ticking_gc.trigger()

    def _start_ticking(self) -> None:
        self.destroy_guard_condition(self._start_ticking_gc)
        with self._lock:
            if self._tick_thread is not None and not self._stop_sent and not self._tick_thread.started:
                self._tick_thread.start()

    @property
    def thread_failure(self) -> BaseException | None:
        """The exception that ended the tick thread (``run_node`` raises it: the process's error path)."""
        return self._tick_thread.failure if self._tick_thread is not None else None

    def _apply_process_priority(self) -> PriorityResult:
        """The real-time request (every thread: the DDS threads exist by now; later ones inherit)."""
        cfg = self.config
        try:
            prio = apply_process_priority(cfg.scheduling_policy, cfg.scheduling_priority, cfg.cpus(),
                                          cfg.lock_memory)
        except ValueError as exc:
            raise ParameterError(f"parameter 'cpu_affinity' = {cfg.cpu_affinity!r}: {exc}") from exc
        got = (f"{prio.policy} on {prio.threads} threads, CPUs {list(prio.affinity) or 'any'}, memory "
               f"{'locked' if prio.memory_locked else 'not locked'}")
        if prio.detail:
            self.get_logger().warning(f"real-time request not fully granted: {prio.detail}; running with "
                                      f"{got}")
        else:
            self.get_logger().info(f"process priority: {got}")
        return prio

    def publish_shutdown_stop(self) -> bool:
        """Publish the zero-speed SHUTDOWN command once; False if it could not be published.

        Called by :meth:`destroy_node`, i.e. on every way the node stops while its context is
        valid (``node_main`` keeps rclpy's signal handlers from invalidating it first).
        """
        if self._stop_sent or not self.context.ok():
            return self._stop_sent
        # nothing may follow the stop command: no tick starts after it (a tick still running after
        # TICK_STOP_TIMEOUT is waited for by the lock, and sees _stop_sent)
        if self._timer is not None:
            self._timer.cancel()
        if self._tick_thread is not None and not self._tick_thread.stop(TICK_STOP_TIMEOUT):
            self.get_logger().error(f"control tick still running {TICK_STOP_TIMEOUT} s after the stop "
                                    "request")
        with self._lock:
            if self._stop_sent:
                return True
            self._stop_sent = True
            now = self._ros_now()
            cmd = self.follower.shutdown_command(now)
            try:
                self._publish_command(cmd, now)
                for pub in (self._control_pub, self._twist_pub):
                    if pub is not None:
                        pub.wait_for_all_acked(Duration(seconds=STOP_ACK_TIMEOUT))
            except Exception as exc:
                self.get_logger().error(f"could not publish the shutdown stop command: {exc}")
                return False
        self.get_logger().warning(f"SHUTDOWN: follower stopping: published speed 0 (last command "
                                  f"{self._last_speed:.2f} m/s, braking at {self.config.stop_decel} "
                                  "m/s^2 requested)")
        return True

    def destroy_node(self) -> None:
        self.publish_shutdown_stop()
        super().destroy_node()

    def _on_config(self, config: FollowerConfig) -> None:
        with self._lock:  # between two ticks
            self.config = config
            self.follower.set_config(config)
            self.odom_monitor.stale_after = config.odom_stop_after
            self.odom_monitor.min_rate_hz = config.odom_min_rate_hz
            self.trajectory_monitor.stale_after = config.trajectory_timeout
            self.trajectory_monitor.min_rate_hz = config.trajectory_min_rate_hz

    def _ros_now(self) -> float:
        """[s] ROS clock: stamps, input ages, stop triggers (nodes/clocks.py)."""
        return ros_now(self)

    def _observe_clock(self, now: float) -> None:
        if self.follower.observe_clock(now):
            self.odom_monitor.clock_reset()
            self.trajectory_monitor.clock_reset()
            self.source.clock_reset()
            self._warn("clock", "node clock jumped back (sim restart / bag loop): trajectory and odometry "
                                "history cleared")

    def _warn(self, key: str, text: str, error: bool = False) -> None:
        """Rate-limited log line, per kind of problem (WARN_PERIOD_S), with how many were held back."""
        more = self._warnings.allow(key, time.monotonic())
        if more is not None:
            text += f" ({more} more since the last message)" if more else ""
            (self.get_logger().error if error else self.get_logger().warning)(text)

    def _on_trajectory(self, msg: Trajectory, now: float) -> None:
        fields = msg_to_trajectory_fields(msg)
        rejection = self.follower.set_trajectory(fields, now)
        self._count(self.trajectory_monitor, rejection, now)
        if rejection is not None and self.source.rejected(rejection, fields.producer,
                                                          fields.producer_instance, now):
            self._report_now()  # an intruder: ERROR now, not at the next period

    def _report_now(self) -> None:
        """Publish /diagnostics for an event at once, at most every EVENT_REPORT_PERIOD (an intruder
        varying its name must not make every one of its plans a /diagnostics message); a report
        held back goes out with the next graph check."""
        if time.monotonic() - self._last_event_report >= EVENT_REPORT_PERIOD:
            self._last_event_report = time.monotonic()
            self._event_report_due = False
            self.publish_diagnostics()
        else:
            self._event_report_due = True

    def _check_graph(self) -> None:
        """More than one publisher on the trajectory topic is an ERROR whatever they send."""
        with self._lock:
            self._check_graph_locked()

    def _check_graph_locked(self) -> None:
        if self._event_report_due:
            self._report_now()
        topic = self._traj_sub.topic_name
        count = self.count_publishers(topic)
        if count == self._publishers_seen and not self.source.names_pending():
            return
        self._publishers_seen = count
        names = [f"{i.node_namespace.rstrip('/')}/{i.node_name}"
                 for i in self.get_publishers_info_by_topic(topic)]
        if not self.source.graph(names):
            return
        if len(names) > 1:
            self._warn("graph", f"{len(names)} publishers on {topic}: {', '.join(names)}; following only "
                                f"{self.source.producer!r}", error=True)
        self._report_now()

    def _on_odom(self, data: bytes, now: float) -> None:
        fields = odometry_fields_from_serialized(data)
        self._count(self.odom_monitor, self.follower.add_odometry(fields, now), now)

    def _count(self, monitor: InputMonitor, rejection: Rejection | None, now: float) -> None:
        """Watchdog + counters; a rejection kind is logged at most once per 2 s (field and value)."""
        if rejection is None:
            monitor.accepted(now)
            return
        text = monitor.rejected(rejection, now, time.monotonic())
        if text is not None:
            self.get_logger().warning(text)

    def tick(self) -> None:
        """One control step: compute and publish (also called directly by the benchmark)."""
        with self._lock:
            if self._stop_sent:  # the shutdown stop command is the last one
                return
            self.loop_timing.started(time.monotonic())
            try:
                self._tick()
            finally:
                self.loop_timing.finished(time.monotonic())

    def _tick(self) -> None:
        now = self._ros_now()
        self._observe_clock(now)
        for odom in self._odom_sub.take():
            self._on_odom(odom, now)
        for traj in self._traj_sub.take():
            self._on_trajectory(traj, now)
        cmd = self.follower.update(now)
        self._last_cmd = cmd
        self._publish_command(cmd, now)
        self._last_speed = cmd.speed
        if self._lookahead_pub.get_subscription_count() > 0:  # an RViz marker: only when displayed
            point = self._point_msg
            set_time(point.header.stamp, now)
            point.point.x, point.point.y = float(cmd.lookahead_x), float(cmd.lookahead_y)
            self._lookahead_pub.publish(point)
        if cmd.status == ControlStatus.FAULT_STOP:
            self._warn("fault", f"command rejected by the output guard ({self.follower.last_fault}): "
                                f"controlled stop at {self.config.stop_decel} m/s^2 "
                                f"({self.follower.faults} so far)", error=True)
        if cmd.status != self._last_status:
            if cmd.status != ControlStatus.FAULT_STOP:
                self._log_status(cmd)
            self._last_status = cmd.status

    def _publish_command(self, cmd: FollowerCommand, stamp: float) -> None:
        """``cmd`` on /vla/control and (per ``cmd_vel_type``, when anyone subscribes) /cmd_vel, stamped
        ``stamp`` [s, node clock]. The messages are reused every tick (no garbage per tick)."""
        self._control_pub.publish(fill_command_msg(self._control_msg, cmd, stamp))
        if self._twist_pub is not None and self._twist_pub.get_subscription_count() > 0:
            if isinstance(self._twist_msg, TwistStamped):
                set_time(self._twist_msg.header.stamp, stamp)
                twist = self._twist_msg.twist
            else:
                twist = self._twist_msg
            twist.linear.x, twist.angular.z = float(cmd.speed), float(cmd.yaw_rate)
            self._twist_pub.publish(self._twist_msg)

    def _log_status(self, cmd: FollowerCommand) -> None:
        reason = self.follower.status_reason(cmd.stamp)
        if cmd.status == ControlStatus.TRACKING:
            self.get_logger().info(f"TRACKING: {reason}")
        elif cmd.status == ControlStatus.NO_TRAJECTORY:
            self.get_logger().info(f"NO_TRAJECTORY: {reason}: waiting for /vla/trajectory, speed 0")
        else:
            self.get_logger().warning(
                f"{cmd.status.name}: {reason}: controlled stop at {self.config.stop_decel} m/s^2")

    def publish_diagnostics(self) -> None:
        """Control state + one status per input topic on /diagnostics."""
        with self._lock:
            self._publish_diagnostics_locked()

    def _publish_diagnostics_locked(self) -> None:
        now = self._ros_now()
        cmd, name = self._last_cmd, diagnostic_name(self)
        waited = self.follower.planned_stop_wait(now)
        if cmd is None:
            level, message, status = WARN, "no control tick yet", "none"
        else:
            status = cmd.status.name
            if cmd.status == ControlStatus.FAULT_STOP:
                level, message = ERROR, f"FAULT_STOP: {self.follower.last_fault}"
            elif cmd.status == ControlStatus.TRACKING:
                level, message = OK, f"TRACKING: {self.follower.status_reason(now)}"
                if waited >= self.config.planned_stop_warn_after:
                    level, message = WARN, (f"standing at a planned stop for {waited:.0f} s: the policy does "
                                            "not plan to go (stop-line deadlock?)")
            else:
                level, message = WARN, f"{status}: {self.follower.status_reason(now)}"
        values = {
            "status": status,
            "speed": f"{cmd.speed:.3f}" if cmd else "0",
            "steering_angle": f"{cmd.steering_angle:.4f}" if cmd else "0",
            "command_faults": str(self.follower.faults),
            "last_fault": self.follower.last_fault,
            "clock_resets": str(self.follower.clock.jumps),
            "planned_stop_wait_s": f"{waited:.1f}",
        }
        arr = DiagnosticArray(status=[
            status_msg(f"{name}: control", level, message, values),
            input_status(name, self.odom_monitor, now),
            input_status(name, self.trajectory_monitor, now),
            status_msg(f"{name}: trajectory source", *self.source.report(now, self.follower.trajectory)),
            self._loop_status(name),
        ])
        arr.header.stamp = sec_to_time(max(now, 0.0))
        self._diag_pub.publish(arr)

    def _loop_status(self, name: str) -> DiagnosticStatus:
        """The control loop's own timing (steady clock; under use_sim_time ticks follow /clock's
        pace): WARN when a tick came more than 2 periods after the previous one since the last report."""
        t = self.loop_timing
        new_late, self._late_reported = t.late - self._late_reported, t.late
        if new_late > 0:
            level, message = WARN, (f"{new_late} late tick(s) since the last report (> 2 periods; "
                                    f"longest gap {t.longest_gap_ms:.0f} ms since start)")
        else:
            level, message = OK, f"{t.ticks} ticks, none late since the last report"
        values = {**t.as_values(), "tick": self.tick_driver, "scheduling": self.priority.policy,
                  "cpu_affinity": ",".join(map(str, self.priority.affinity)),
                  "memory_locked": str(self.priority.memory_locked).lower()}
        return status_msg(f"{name}: control loop", level, message, values)


def main(args: list[str] | None = None) -> int:
    return run_node(FollowerNode, (ParameterError,), args, config=FollowerConfig)


if __name__ == "__main__":
    sys.exit(main())
