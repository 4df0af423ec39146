"""Follower node: pure pursuit at ``rate_hz`` on the latest /vla/trajectory (see docs/follower.md).

Thin wiring around :class:`minipamayo_ros.control.follower.Follower`: parameters, message
conversion, one timer on the node clock (so ``use_sim_time`` + /clock drive it), a
SingleThreadedExecutor and nothing else in this process, so that the timer is not delayed by
other Python work (the GIL).

Subscribes ``/vla/trajectory`` (reliable, keep-last 1) and ``/odom`` (sensor-data QoS).
Publishes every tick ``/vla/control`` (ControlCommand), ``/vla/lookahead_point``
(geometry_msgs/PointStamped, base_link, for RViz) and, per ``cmd_vel_type``, ``/cmd_vel``
(geometry_msgs/Twist or TwistStamped: linear.x = speed, angular.z = speed * curvature), and
``/diagnostics`` every ``diagnostics_period``: the control state, one status per input topic
(watchdog OK / stale / never received / rate too low, rejection counters) and the control loop's
own timing on the steady clock (tick interval / work percentiles, late ticks: WARN).

Every input passes the safety core before it is stored (``minipamayo_ros.safety``); a dropped
sample is counted and logged once per 2 s per kind with the field and value. A command that fails
the output guard is replaced by the FAULT_STOP command (logged, counted in /diagnostics).

Stopping the node (SIGINT, SIGTERM, an exception, ``destroy_node()``) first publishes one
zero-speed command (status SHUTDOWN, see ``Follower.shutdown_command``) on ``/vla/control`` and
``/cmd_vel`` and waits up to :data:`STOP_ACK_TIMEOUT` for reliable subscribers to acknowledge it
(guarantees per failure: docs/follower.md, "What the vehicle receives when something fails").
"""

from __future__ import annotations

import sys
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
from minipamayo_ros.nodes.conversions import (
    command_to_msg,
    msg_to_trajectory_fields,
    odometry_to_fields,
    sec_to_time,
)
from minipamayo_ros.nodes.diagnostics import input_status, status_msg
from minipamayo_ros.nodes.node_main import run_node
from minipamayo_ros.nodes.ros_params import declare_config
from minipamayo_ros.params import ParameterError
from minipamayo_ros.safety.input_monitor import ERROR, OK, WARN, InputMonitor
from minipamayo_ros.safety.rejection import Rejection

TRAJECTORY_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                            depth=1)
BASE_FRAME = "base_link"
STOP_ACK_TIMEOUT = 0.5  # [s] wait for subscribers to acknowledge the shutdown stop command


class FollowerNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("follower", **kwargs)
        self.config: FollowerConfig = declare_config(self, FollowerConfig, self._on_config)
        self.follower = Follower(self.config)
        self._last_status: ControlStatus | None = None
        self._stop_sent = False
        self._last_speed = 0.0  # [m/s] of the last command published by tick()
        self._last_cmd: FollowerCommand | None = None
        self._last_fault_log = -1e9
        self.loop_timing = LoopTiming(self.config.period)  # steady clock: missed deadlines, any clock mode
        self._late_reported = 0
        self.odom_monitor = InputMonitor("/odom", self.config.odom_timeout, self.config.odom_min_rate_hz)
        self.trajectory_monitor = InputMonitor("/vla/trajectory", self.config.trajectory_timeout,
                                               self.config.trajectory_min_rate_hz)

        self.create_subscription(Trajectory, "/vla/trajectory", self._on_trajectory, TRAJECTORY_QOS)
        self.create_subscription(Odometry, "/odom", self._on_odom, qos_profile_sensor_data)
        self._control_pub = self.create_publisher(ControlCommand, "/vla/control", 10)
        self._lookahead_pub = self.create_publisher(PointStamped, "/vla/lookahead_point", 1)
        self._twist_pub = None
        if self.config.cmd_vel_type == "twist":
            self._twist_pub = self.create_publisher(Twist, "/cmd_vel", 10)
        elif self.config.cmd_vel_type == "twist_stamped":
            self._twist_pub = self.create_publisher(TwistStamped, "/cmd_vel", 10)
        # the node clock: ROS time, i.e. /clock when use_sim_time is true
        self._timer = self.create_timer(self.config.period, self.tick)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(self.config.diagnostics_period, self.publish_diagnostics)
        self.get_logger().info(
            f"follower at {self.config.rate_hz:g} Hz, trajectory_timeout {self.config.trajectory_timeout} s, "
            f"stop_decel {self.config.stop_decel} m/s^2, cmd_vel: {self.config.cmd_vel_type}")

    def publish_shutdown_stop(self) -> bool:
        """Publish the zero-speed SHUTDOWN command once; False if it could not be published.

        Called by :meth:`destroy_node`, i.e. on every way the node stops while its context is
        valid (``node_main`` keeps rclpy's signal handlers from invalidating it first).
        """
        if self._stop_sent or not self.context.ok():
            return self._stop_sent
        self._stop_sent = True
        self._timer.cancel()  # nothing may follow the stop command
        now = self._now()
        cmd = self.follower.shutdown_command(now)
        try:
            self._publish_command(cmd, sec_to_time(now))
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
        self.config = config
        self.follower.set_config(config)
        self.odom_monitor.stale_after = config.odom_timeout
        self.odom_monitor.min_rate_hz = config.odom_min_rate_hz
        self.trajectory_monitor.stale_after = config.trajectory_timeout
        self.trajectory_monitor.min_rate_hz = config.trajectory_min_rate_hz

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _observe_clock(self, now: float) -> None:
        if self.follower.observe_clock(now):
            self.odom_monitor.clock_reset()
            self.trajectory_monitor.clock_reset()
            self.get_logger().warning("node clock jumped back (sim restart / bag loop): trajectory and "
                                      "odometry history cleared")

    def _on_trajectory(self, msg: Trajectory) -> None:
        now = self._now()
        self._observe_clock(now)
        rejection = self.follower.set_trajectory(msg_to_trajectory_fields(msg), now)
        self._count(self.trajectory_monitor, rejection, now)

    def _on_odom(self, msg: Odometry) -> None:
        now = self._now()
        self._observe_clock(now)
        self._count(self.odom_monitor, self.follower.add_odometry(odometry_to_fields(msg), now), now)

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
        self.loop_timing.started(time.monotonic())
        try:
            self._tick()
        finally:
            self.loop_timing.finished(time.monotonic())

    def _tick(self) -> None:
        now = self._now()
        self._observe_clock(now)
        cmd = self.follower.update(now)
        self._last_cmd = cmd
        stamp = sec_to_time(now)
        self._publish_command(cmd, stamp)
        self._last_speed = cmd.speed
        point = PointStamped()
        point.header.stamp = stamp
        point.header.frame_id = BASE_FRAME
        point.point.x, point.point.y = cmd.lookahead_x, cmd.lookahead_y
        self._lookahead_pub.publish(point)
        if cmd.status == ControlStatus.FAULT_STOP and time.monotonic() - self._last_fault_log >= 2.0:
            self._last_fault_log = time.monotonic()
            self.get_logger().error(f"command rejected by the output guard ({self.follower.last_fault}): "
                                    f"controlled stop at {self.config.stop_decel} m/s^2 "
                                    f"({self.follower.faults} so far)")
        if cmd.status != self._last_status:
            if cmd.status != ControlStatus.FAULT_STOP:
                self._log_status(cmd)
            self._last_status = cmd.status

    def _publish_command(self, cmd: FollowerCommand, stamp: object) -> None:
        """``cmd`` on /vla/control and (per ``cmd_vel_type``) /cmd_vel."""
        self._control_pub.publish(command_to_msg(cmd, stamp, BASE_FRAME))
        if self._twist_pub is not None:
            twist = Twist()
            twist.linear.x, twist.angular.z = cmd.speed, cmd.yaw_rate
            if self.config.cmd_vel_type == "twist_stamped":
                stamped = TwistStamped()
                stamped.header.stamp = stamp
                stamped.header.frame_id = BASE_FRAME
                stamped.twist = twist
                self._twist_pub.publish(stamped)
            else:
                self._twist_pub.publish(twist)

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
        now = self._now()
        cmd, name = self._last_cmd, self.get_name()
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
        return status_msg(f"{name}: control loop", level, message, t.as_values())


def main(args: list[str] | None = None) -> int:
    return run_node(FollowerNode, (ParameterError,), args, config=FollowerConfig)


if __name__ == "__main__":
    sys.exit(main())
