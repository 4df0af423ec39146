"""A follower that stops for any reason first commands zero speed (real processes, real DDS).

SIGINT, SIGTERM, an exception in a callback, ``destroy_node()``: each ends with one SHUTDOWN
command, speed 0, on /vla/control and /cmd_vel, received by a reliable subscriber before the
process exits. (Before node_main kept rclpy's signal handlers from shutting the context down
first, the last command after a signal was whatever the last tick had computed: TRACKING at speed.)
"""

from __future__ import annotations

import signal
import sys
import time

import numpy as np
import pytest
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from conftest import REPO_ROOT, spin_until
from minipamayo_ros.bringup.processes import ros_args
from minipamayo_ros.control.config import FollowerConfig
from minipamayo_ros.control.follower import ControlStatus
from minipamayo_ros.msg import ControlCommand, Trajectory
from minipamayo_ros.nodes.conversions import sec_to_time, time_to_sec, trajectory_to_msg
from minipamayo_ros.trajectory import PlannedTrajectory

pytestmark = pytest.mark.ros

MODULE = "minipamayo_ros.nodes.follower_node"
HELPER = REPO_ROOT / "test" / "helpers" / "crashing_follower.py"
RELIABLE_1 = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=1)
RELIABLE_500 = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                          depth=500)
SPEED = 4.0  # [m/s]


def _odom(stamp: float, x: float) -> Odometry:
    msg = Odometry()
    msg.header.stamp = sec_to_time(stamp)
    msg.header.frame_id = "odom"
    msg.child_frame_id = "base_link"
    msg.pose.pose.position.x = x
    msg.pose.pose.orientation.w = 1.0
    msg.twist.twist.linear.x = SPEED
    return msg


def _drive(node: object) -> tuple[list[ControlCommand], list[Twist]]:
    """Feed the follower a straight 4 m/s plan and odometry; record what it commands."""
    commands: list[ControlCommand] = []
    twists: list[Twist] = []
    node.create_subscription(ControlCommand, "/vla/control", commands.append, RELIABLE_500)
    node.create_subscription(Twist, "/cmd_vel", twists.append, RELIABLE_500)
    odom_pub = node.create_publisher(Odometry, "/odom", qos_profile_sensor_data)
    traj_pub = node.create_publisher(Trajectory, "/vla/trajectory", RELIABLE_1)
    t0 = time.time()
    seq = {"n": 0}

    def publish_odom() -> None:
        now = time.time()
        odom_pub.publish(_odom(now, SPEED * (now - t0)))

    def publish_trajectory() -> None:
        seq["n"] += 1
        t = 0.1 * np.arange(1, 21)
        traj = PlannedTrajectory(stamp=time.time() - 0.05, points=np.stack((SPEED * t, 0.0 * t), 1),
                                 speeds=np.full(20, SPEED), sequence=seq["n"], producer="/policy")
        traj_pub.publish(trajectory_to_msg(traj))

    node.create_timer(0.02, publish_odom)
    node.create_timer(0.1, publish_trajectory)
    return commands, twists


def _at_speed(commands: list[ControlCommand]) -> bool:
    return any(c.status == ControlStatus.TRACKING and c.speed > 2.0 for c in commands[-5:])


def _assert_ends_with_stop(commands: list[ControlCommand], twists: list[Twist]) -> None:
    assert commands, "no command received"
    last = commands[-1]
    assert last.status == ControlStatus.SHUTDOWN, [ControlStatus(c.status).name for c in commands[-5:]]
    assert last.speed == 0.0 and last.yaw_rate == 0.0
    assert last.acceleration == pytest.approx(-FollowerConfig().stop_decel)  # it was moving
    assert sum(c.status == ControlStatus.SHUTDOWN for c in commands) == 1
    assert any(c.speed > 2.0 for c in commands[-10:-1]), "was not driving when stopped"
    assert twists and twists[-1].linear.x == 0.0 and twists[-1].angular.z == 0.0


@pytest.mark.parametrize("signals", [[signal.SIGINT], [signal.SIGTERM], [signal.SIGINT, signal.SIGINT]],
                         ids=["SIGINT", "SIGTERM", "SIGINT-twice"])
def test_signal_stops_with_zero_speed_command_first(ros_node, spawn, signals) -> None:
    """(Twice: a terminal's Ctrl-C reaches the node and ros2 launch forwards it again.)"""
    node, executor = ros_node
    commands, twists = _drive(node)
    proc = spawn(module=MODULE, args=ros_args(params_files=[REPO_ROOT / "config" / "follower.yaml"]))
    assert spin_until(executor, lambda: _at_speed(commands), 30.0), proc.read_log()[-2000:]
    t_signal = time.time()
    for sig in signals:
        proc.send_signal(sig)
    spin_until(executor, lambda: proc.poll() is not None, 10.0)
    spin_until(executor, lambda: False, 0.5)  # anything still in flight
    assert proc.poll() == 0, proc.read_log()[-2000:]
    _assert_ends_with_stop(commands, twists)
    assert "SHUTDOWN: follower stopping" in proc.read_log()
    print(f"MEASURED {'+'.join(signal.Signals(s).name for s in signals)}: SHUTDOWN command stamped "
          f"{time_to_sec(commands[-1].header.stamp) - t_signal:.3f} s after the signal")


def test_exception_in_a_callback_stops_with_zero_speed_command_first(ros_node, spawn) -> None:
    node, executor = ros_node
    commands, twists = _drive(node)
    proc = spawn([sys.executable, "-u", str(HELPER), "--ros-args", "--params-file",
                  str(REPO_ROOT / "config" / "follower.yaml")], name="crashing_follower")
    assert spin_until(executor, lambda: proc.poll() is not None, 60.0), "the injected fault never fired"
    spin_until(executor, lambda: False, 0.5)
    assert proc.poll() == 1, proc.read_log()[-2000:]  # the exception is not swallowed
    assert "injected fault" in proc.read_log()
    _assert_ends_with_stop(commands, twists)


def test_destroy_node_publishes_the_stop(ros_node, rclpy_context) -> None:
    from minipamayo_ros.nodes.follower_node import FollowerNode

    node, executor = ros_node
    commands: list[ControlCommand] = []
    node.create_subscription(ControlCommand, "/vla/control", commands.append, RELIABLE_500)
    follower = FollowerNode(context=rclpy_context)
    assert spin_until(executor, lambda: follower._control_pub.get_subscription_count() > 0, 10.0)
    follower.publish_shutdown_stop()
    assert follower.publish_shutdown_stop(), "a second call reports the stop already sent"
    follower.destroy_node()  # must not publish a second one
    assert spin_until(executor, lambda: len(commands) >= 1, 10.0)
    spin_until(executor, lambda: False, 0.3)
    assert [c.status for c in commands] == [ControlStatus.SHUTDOWN]
    assert commands[0].speed == 0.0 and commands[0].acceleration == 0.0  # never moved: no braking


def test_shutdown_command_core() -> None:
    from minipamayo_ros.control.follower import Follower

    f = Follower(FollowerConfig())
    cmd = f.shutdown_command(12.0)
    assert cmd.status == ControlStatus.SHUTDOWN and cmd.speed == 0.0 and cmd.acceleration == 0.0
    assert cmd.stamp == 12.0 and cmd.stopping
