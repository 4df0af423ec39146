"""PolledSubscription (nodes/polled_subscription.py): the executor never runs or consumes it; take()
returns what arrived, oldest first, at most ``depth`` per call (real rclpy over loopback DDS)."""

from __future__ import annotations

import time

from std_msgs.msg import Int32

from conftest import spin_until
from minipamayo_ros.nodes.polled_subscription import PolledSubscription


def test_the_executor_leaves_the_messages_to_take(ros_node: tuple) -> None:
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    node, executor = ros_node
    qos = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=3)
    polled = PolledSubscription(node, Int32, "polled_test", qos)
    pub = node.create_publisher(Int32, "polled_test", 10)
    assert spin_until(executor, lambda: pub.get_subscription_count() == 1, 10.0)
    for i in range(5):
        pub.publish(Int32(data=i))
    # the executor spins while the messages arrive: it must neither run the subscription's
    # callback (it raises) nor take them
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    assert [m.data for m in polled.take()] == [2, 3, 4]  # keep-last 3, oldest first
    assert list(polled.take()) == []
    assert polled.topic_name == "/polled_test"
