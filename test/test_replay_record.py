"""record: a real rclpy node over loopback DDS writes what it receives into a bag that decodes to
exactly what was published (raw CDR passthrough; images optionally stored as PNG CompressedImage);
a recorder started with the stack subscribes before it, with the stack's QoS, and hands on what it
writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import spin_until
from minipamayo_ros.geometry import Pose2D
from minipamayo_ros.nodes.conversions import odometry_to_sample
from minipamayo_ros.pose_history import OdometrySample
from minipamayo_ros.replay.bagio import BagReader
from minipamayo_ros.replay.inputs import camera_frame
from minipamayo_ros.replay.messages import trajectory_record
from minipamayo_ros.replay.record import BagRecorder
from minipamayo_ros.trajectory import PlannedTrajectory

pytestmark = pytest.mark.ros

N = 12


def _image(k: int) -> np.ndarray:
    rng = np.random.default_rng(k)
    return rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize("storage,images", [("mcap", "png"), ("sqlite3", "")])
def test_recorded_bag_holds_what_was_published(
    ros_node: tuple, tmp_path: Path, storage: str, images: str
) -> None:
    from nav_msgs.msg import Odometry
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from minipamayo_ros.msg import Trajectory
    from minipamayo_ros.nodes.conversions import rgb_to_image, sample_to_odometry, trajectory_to_msg

    node, executor = ros_node
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    pubs = {
        "img": node.create_publisher(Image, "/rec_test/image", qos),
        "odom": node.create_publisher(Odometry, "/rec_test/odom", qos),
        "traj": node.create_publisher(Trajectory, "/rec_test/trajectory", qos),
    }
    rec_node = Node("bag_recorder_test", context=node.context)
    executor.add_node(rec_node)
    topics = ["/rec_test/image", "/rec_test/odom", "/rec_test/trajectory", "/rec_test/never"]
    rec = BagRecorder(rec_node, tmp_path / "bag", topics, storage, images)
    try:
        assert spin_until(executor, lambda: (rec.poll_graph(0.1), len(rec.subscribed) == 3)[1], 10.0)
        assert spin_until(executor, lambda: all(p.get_subscription_count() > 0 for p in pubs.values()), 10.0)
        samples = [
            OdometrySample(1.0 + 0.1 * k, Pose2D(0.5 * k, 0.1 * k, 0.01 * k), 5.0, 0.1) for k in range(N)
        ]
        trajs = [
            PlannedTrajectory(
                stamp=1.0 + 0.1 * k,
                points=np.stack((np.arange(1, 21) * 0.5, np.zeros(20)), 1),
                speeds=np.full(20, 5.0),
                uncertainty=0.25,
                sequence=k + 1,
                model_id="test@0",
            )
            for k in range(N)
        ]
        for k in range(N):
            pubs["img"].publish(rgb_to_image(_image(k), 1.0 + 0.1 * k))
            pubs["odom"].publish(sample_to_odometry(samples[k]))
            pubs["traj"].publish(trajectory_to_msg(trajs[k]))
        spin_until(executor, lambda: min(rec.writer.counts.values(), default=0) >= N, 10.0)
    finally:
        counts = rec.close()
        executor.remove_node(rec_node)
        rec_node.destroy_node()
    image_topic = "/rec_test/image/compressed" if images else "/rec_test/image"
    assert counts == {image_topic: N, "/rec_test/odom": N, "/rec_test/trajectory": N}
    assert "/rec_test/never" not in rec.subscribed

    with BagReader(tmp_path / "bag") as r:
        assert r.info is not None and r.info.storage == storage
        kinds = {t.name: t.msgtype for t in r.info.topics}
        assert kinds[image_topic] == (
            "sensor_msgs/msg/CompressedImage" if images else "sensor_msgs/msg/Image"
        )
        got: dict[str, list] = {"img": [], "odom": [], "traj": []}
        log_times = []
        for topic, msgtype, t, msg in r.messages(list(kinds)):
            log_times.append(t)
            if topic == image_topic:
                got["img"].append(camera_frame(msg, msgtype, now=0.0)[0].decode())
            elif topic == "/rec_test/odom":
                got["odom"].append(odometry_to_sample(msg))
            else:
                got["traj"].append(trajectory_record(msg))
    assert log_times == sorted(log_times)
    for k in range(N):  # lossless: PNG or raw, the policy would see the same pixels
        assert np.array_equal(got["img"][k], _image(k))
        assert got["odom"][k].stamp == pytest.approx(samples[k].stamp, abs=1e-9)
        assert got["odom"][k].pose.yaw == pytest.approx(samples[k].pose.yaw, abs=1e-12)
        assert got["traj"][k].sequence == k + 1 and got["traj"][k].x == list(trajs[k].points[:, 0])


def test_known_types_are_subscribed_before_any_publisher(ros_node: tuple, tmp_path: Path) -> None:
    """A recorder started with the stack (the demo) subscribes at once: the bag has the stack's first
    messages, best effort matching a sensor-data publisher; the demo's types are those of every
    default topic."""
    from nav_msgs.msg import Odometry
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data

    from minipamayo_ros.nodes.conversions import sample_to_odometry
    from minipamayo_ros.replay.record import DEFAULT_TOPICS, STACK_TYPES

    assert set(STACK_TYPES) == set(DEFAULT_TOPICS)
    node, executor = ros_node
    rec_node = Node("bag_recorder_early", context=node.context)
    executor.add_node(rec_node)
    topic = "/rec_early/odom"
    rec = BagRecorder(rec_node, tmp_path / "bag", [topic], types={topic: STACK_TYPES["odom"]})
    try:
        assert rec.subscribed == {"/rec_early/odom": "nav_msgs/msg/Odometry"}  # no publisher yet
        pub = node.create_publisher(Odometry, "/rec_early/odom", qos_profile_sensor_data)
        assert spin_until(executor, lambda: pub.get_subscription_count() > 0, 10.0)
        for k in range(N):
            sample = OdometrySample(1.0 + 0.02 * k, Pose2D(0.1 * k, 0.0, 0.0), 5.0, 0.0)
            pub.publish(sample_to_odometry(sample))
        spin_until(executor, lambda: rec.writer.counts.get("/rec_early/odom", 0) >= N, 10.0)
    finally:
        counts = rec.close()
        executor.remove_node(rec_node)
        rec_node.destroy_node()
    assert counts == {"/rec_early/odom": N}


def test_known_reliable_topics_are_subscribed_reliable_and_tapped(ros_node: tuple, tmp_path: Path) -> None:
    """The demo's bag: a topic the stack publishes reliable (the scored scene frames) is subscribed
    reliable before any publisher, as on discovery (best effort would not get a lost sample resent),
    and a tap gets exactly the messages written (the demo's report scores the bag's frames)."""
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.serialization import deserialize_message
    from std_msgs.msg import String

    from minipamayo_ros.replay.record import DEFAULT_TOPICS, STACK_RELIABLE, STACK_TYPES

    assert set(DEFAULT_TOPICS) > STACK_RELIABLE and "sim/ground_truth/scene" in STACK_RELIABLE
    node, executor = ros_node
    rec_node = Node("bag_recorder_reliable", context=node.context)
    executor.add_node(rec_node)
    topic = "/rec_reliable/scene"
    tapped: list[str] = []
    types = {topic: STACK_TYPES["sim/ground_truth/scene"]}
    taps = {topic: lambda b: tapped.append(deserialize_message(b, String).data)}
    rec = BagRecorder(rec_node, tmp_path / "bag", [topic], types=types, reliable={topic}, taps=taps)
    try:
        (info,) = node.get_subscriptions_info_by_topic(topic)
        assert info.qos_profile.reliability == ReliabilityPolicy.RELIABLE  # no publisher yet
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        pub = node.create_publisher(String, topic, qos)
        assert spin_until(executor, lambda: pub.get_subscription_count() > 0, 10.0)
        for k in range(N):
            pub.publish(String(data=f"frame {k}"))
        spin_until(executor, lambda: rec.writer.counts.get(topic, 0) >= N, 10.0)
    finally:
        counts = rec.close()
        executor.remove_node(rec_node)
        rec_node.destroy_node()
    assert counts == {topic: N}
    with BagReader(tmp_path / "bag") as bag:
        assert [m.data for _, _, _, m in bag.messages([topic])] == tapped == [f"frame {k}" for k in range(N)]
