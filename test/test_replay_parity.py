"""Replay fidelity: a bag holding hostile samples gives the lock-step replay exactly what the policy
node gets over DDS -- the same rejections per input and kind, the same trajectories bit for bit.

The bag is 3 s of the simulator (raw camera 10 Hz, odometry 50 Hz) with hostile samples: odometry
samples replaced by ones with an all-zero quaternion or a NaN twist, copies stamped 0.5 s ahead of
their arrival; camera images with a buffer 7 B short, an unsupported encoding, a stamp 0.55 s ahead.
The lock-step replay runs on it; then a policy node process (sim time) is fed the same messages (raw
CDR from the bag, in log-time order, ``/clock`` = each message's log time), waiting for each
trajectory the lock-step replay made. Its ``/diagnostics`` rejection counters and its trajectories
must equal the replay's.

Before lock-step replay used the node's input functions, it rebuilt a clean quaternion from any
orientation (an all-zero one became yaw 0) and took each message's own stamp as "now" (a future
stamp was never in the future): checked, this test then fails -- 0 bad_quaternion and 0
future_stamp rejections where the node counts 3 + 2 and 1, and trajectories the node never made.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.qos import qos_profile_sensor_data
from rclpy.serialization import deserialize_message
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image

from conftest import spin_until
from minipamayo_ros.bringup.processes import ros_args
from minipamayo_ros.msg import Trajectory
from minipamayo_ros.nodes.conversions import sec_to_time
from minipamayo_ros.nodes.policy_node import TRAJECTORY_QOS
from minipamayo_ros.replay import lockstep
from minipamayo_ros.replay.bagio import BagReader, BagWriter, stamp_ns, time_msg
from minipamayo_ros.replay.records import TrajectoryRecord
from minipamayo_ros.replay.simbag import record_sim_bag

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[1]
SEED = 20008          # a test-split road with curves (the golden bag's)
SECONDS = 3.0
NS = 1_000_000_000
#: same policy parameters for both: the stack's files, no frame over the rate cap (10 Hz camera)
POLICY = {"backend": "onnxruntime", "max_rate_hz": 20.0}
#: the odometry sample stamped [s] (sim time) -> what happens to it. On the 0.1 s grid the state
#: history is sampled on, so a sample that gets through changes the policy's input
ODOM_ATTACKS = {1.6: "zero_quaternion", 1.7: "nan_twist", 1.9: "future_stamp", 2.3: "zero_quaternion",
                2.5: "nan_twist", 2.7: "future_stamp", 3.1: "zero_quaternion"}
#: the camera frame stamped [s] -> the hostile image arriving 10 ms before it
IMAGE_ATTACKS = {1.6: "short_buffer", 2.1: "bad_encoding", 2.3: "future_stamp", 2.5: "short_buffer",
                 2.9: "bad_encoding"}
FUTURE_ODOM, FUTURE_IMAGE = 0.5, 0.55  # [s] ahead of arrival (> max_stamp_future 0.1 s)
#: what the node's input checks must call them (safety.rejection kinds)
EXPECTED = {"odometry": {"bad_quaternion": 3, "non_finite": 2, "future_stamp": 2},
            "image": {"bad_shape": 2, "bad_encoding": 2, "future_stamp": 1}}


def _attack(attacks: dict[float, str], stamp: int) -> str | None:
    return next((kind for t, kind in attacks.items() if abs(stamp - round(t * NS)) < 1000), None)


def _hostile_odometry(msg: object, kind: str) -> list[tuple[int, object]]:
    """(log time [ns], message) to write instead of the valid sample ``msg``."""
    log = stamp_ns(msg.header)  # type: ignore[attr-defined]
    bad = copy.deepcopy(msg)
    if kind == "future_stamp":  # the valid sample, and a copy arriving 5 ms later stamped ahead
        bad.header.stamp = time_msg(log + int(FUTURE_ODOM * NS))
        return [(log, msg), (log + 5_000_000, bad)]
    if kind == "zero_quaternion":
        q = bad.pose.pose.orientation
        q.x = q.y = q.z = q.w = 0.0
    else:
        bad.twist.twist.linear.x = math.nan
    return [(log, bad)]


def _hostile_image(msg: object, kind: str) -> tuple[int, object]:
    """(log time [ns], message): a copy of a valid frame arriving 10 ms before it, made hostile."""
    bad = copy.deepcopy(msg)
    log = stamp_ns(msg.header) - 10_000_000  # type: ignore[attr-defined]
    bad.header.stamp = time_msg(log + (int(FUTURE_IMAGE * NS) if kind == "future_stamp" else 0))
    if kind == "short_buffer":
        bad.data = bad.data[:-7]
    elif kind == "bad_encoding":
        bad.encoding = "yuv422"
    return log, bad


def _hostile_bag(tmp_path: Path) -> Path:
    clean = tmp_path / "clean"
    record_sim_bag(clean, SEED, SECONDS, images="raw", overrides={"camera_rate_hz": 10.0}, ground_truth=False)
    out = tmp_path / "hostile"
    messages: list[tuple[int, str, str, object]] = []
    used = 0
    with BagReader(clean) as r:
        for topic, msgtype, log, msg in r.messages(["/odom", "/camera/image_raw"]):
            if topic == "/odom" and (kind := _attack(ODOM_ATTACKS, stamp_ns(msg.header))):
                messages += [(t, topic, msgtype, m) for t, m in _hostile_odometry(msg, kind)]
                used += 1
                continue
            if topic == "/camera/image_raw" and (kind := _attack(IMAGE_ATTACKS, stamp_ns(msg.header))):
                bad_log, bad = _hostile_image(msg, kind)
                messages.append((bad_log, topic, msgtype, bad))
                used += 1
            messages.append((log, topic, msgtype, msg))
    assert used == len(ODOM_ATTACKS) + len(IMAGE_ATTACKS)
    with BagWriter(out, "mcap") as w:
        for log, topic, msgtype, msg in sorted(messages, key=lambda m: m[0]):
            w.write(topic, msgtype, log, msg)
    return out


def _node_rejections(diags: list, topic: str) -> dict[str, int]:
    for arr in reversed(diags):
        for st in arr.status:
            if st.name == f"policy: input {topic}":
                return {kv.key.removeprefix("rejected."): int(kv.value) for kv in st.values
                        if kv.key.startswith("rejected.")}
    return {}


def test_hostile_bag_replays_with_the_nodes_rejections_and_outputs(tmp_path: Path, ros_node, spawn) -> None:
    bag = _hostile_bag(tmp_path)
    settings = lockstep.settings_from_config("drive.yaml", POLICY)
    result = lockstep.run_lockstep(bag, settings, progress=False)
    replayed = {r.stamp_ns: r for r in result.outputs.records() if isinstance(r, TrajectoryRecord)}
    assert result.stats.rejected == EXPECTED, result.stats.as_dict()
    assert len(replayed) >= 15, result.stats.as_dict()

    node, executor = ros_node
    pubs = {"/clock": node.create_publisher(Clock, "/clock", 10),
            "/odom": node.create_publisher(Odometry, "/odom", qos_profile_sensor_data),
            "/camera/image_raw": node.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)}
    received: dict[int, Trajectory] = {}
    diags: list = []
    node.create_subscription(Trajectory, "/vla/trajectory",
                             lambda m: received.setdefault(stamp_ns(m.header), m), TRAJECTORY_QOS)
    node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    proc = spawn(module="minipamayo_ros.nodes.policy_node", name="policy", args=ros_args(
        {**POLICY, "use_sim_time": True}, [REPO / "config" / "policy.yaml", REPO / "config" / "drive.yaml"]))
    assert spin_until(executor, lambda: pubs["/camera/image_raw"].get_subscription_count() > 0
                      or proc.poll() is not None, 90.0) and proc.poll() is None, proc.read_log()[-3000:]
    spin_until(executor, lambda: False, 1.0)  # let the node's subscriptions match ours

    clock = 0
    with BagReader(bag) as r:  # what the node gets: log-time order, /clock = log time
        for topic, _, log, data in r.messages(["/odom", "/camera/image_raw"], raw=True):
            if log > clock:
                clock = log
                pubs["/clock"].publish(Clock(clock=sec_to_time(log / NS)))
            if topic == "/odom":
                pubs[topic].publish(data)
                continue
            # topics are not ordered with each other: let the node's executor take the odometry
            # published so far before the image (no per-sample acknowledgement to wait for)
            spin_until(executor, lambda: False, 0.1)
            stamp = stamp_ns(deserialize_message(data, Image).header)
            for _ in range(3 if stamp in replayed else 1):  # best effort: resend a lost valid frame
                pubs[topic].publish(data)
                if stamp not in replayed or spin_until(executor, lambda: stamp in received, 3.0):  # noqa: B023
                    break
    n = len(diags)
    assert spin_until(executor, lambda: len(diags) > n + 1, 5.0)  # a report after the last message

    node_rejected = {"odometry": _node_rejections(diags, "/odom"),
                     "image": _node_rejections(diags, "/camera/image_raw")}
    print(f"MEASURED hostile bag: rejected lock-step {result.stats.rejected}, node {node_rejected}; "
          f"trajectories lock-step {len(replayed)}, node {len(received)}")
    assert node_rejected == result.stats.rejected
    assert sorted(received) == sorted(replayed), proc.read_log()[-3000:]
    for stamp, want in replayed.items():
        got = received[stamp]
        assert got.sequence == want.sequence and got.model_id == want.model_id
        for name, values in (("x", want.x), ("y", want.y), ("speed", want.speed)):
            a, b = np.asarray(getattr(got, name), np.float32), np.asarray(values, np.float32)
            assert np.array_equal(a, b), f"{stamp / NS:.3f} s: {name} differs: node {a}, lock-step {b}"
        assert np.float32(got.uncertainty) == np.float32(want.uncertainty)
