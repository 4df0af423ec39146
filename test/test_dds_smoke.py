"""Smoke test of the whole chain: a Trajectory crosses a process boundary over loopback DDS."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy

from conftest import spin_until
from minipamayo_ros.msg import Trajectory

pytestmark = pytest.mark.ros

HELPER = Path(__file__).resolve().parent / "helpers" / "echo_trajectory.py"


def test_trajectory_round_trip_between_processes(ros_node, spawn) -> None:
    node, executor = ros_node
    echo = spawn([sys.executable, "-u", str(HELPER)], name="echo")
    received: list[Trajectory] = []
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pub = node.create_publisher(Trajectory, "/smoke/in", qos)
    node.create_subscription(Trajectory, "/smoke/out", received.append, qos)

    assert spin_until(executor, lambda: pub.get_subscription_count() > 0, 20.0), (
        "echo process never subscribed (DDS discovery on loopback failed)"
    )
    msg = Trajectory()
    msg.header.frame_id = "base_link"
    msg.header.stamp.sec = 42
    msg.sequence = 1
    msg.x, msg.y, msg.speed = [1.0, 2.0], [0.0, 0.5], [3.0, 3.0]
    msg.model_id = "tiny@abc"

    def published_and_received() -> bool:
        if not received:
            pub.publish(msg)
        return bool(received)

    assert spin_until(executor, published_and_received, 10.0), "no echo received"
    got = received[0]
    assert got.sequence == 1001
    assert got.header.stamp.sec == 42 and got.header.frame_id == "base_link"
    assert list(got.y) == [0.0, 0.5] and got.model_id == "tiny@abc"
    assert echo.poll() is None, "echo process died"
    # only the running distro's discovery variable is set: no deprecation warning in any process
    assert "ROS_LOCALHOST_ONLY is deprecated" not in echo.read_log()
