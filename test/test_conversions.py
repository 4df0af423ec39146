"""Message <-> core conversions."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from nav_msgs.msg import Odometry
from rclpy.serialization import serialize_message

from minipamayo_ros.geometry import Pose2D
from minipamayo_ros.nodes.conversions import (
    msg_to_trajectory,
    msg_to_trajectory_fields,
    odometry_fields_from_cdr,
    odometry_fields_from_serialized,
    odometry_to_fields,
    odometry_to_sample,
    sample_to_odometry,
    sec_to_time,
    time_to_sec,
    trajectory_to_msg,
)
from minipamayo_ros.pose_history import OdometrySample
from minipamayo_ros.safety.trajectory_input import check_trajectory, trajectory_error
from minipamayo_ros.trajectory import PlannedTrajectory


def test_time_round_trip() -> None:
    t = sec_to_time(12.345678901)
    assert (t.sec, t.nanosec) == (12, 345678901)
    assert time_to_sec(t) == pytest.approx(12.345678901, abs=1e-9)


def test_trajectory_round_trip() -> None:
    t = np.arange(1, 21) * 0.1
    traj = PlannedTrajectory(stamp=5.5, points=np.stack((5 * t, 0.1 * t**2), 1), speeds=np.full(20, 5.0),
                             uncertainty=0.2, sequence=3, model_id="tiny@abc")
    back = msg_to_trajectory(trajectory_to_msg(traj))
    assert back.stamp == pytest.approx(5.5) and back.sequence == 3 and back.model_id == "tiny@abc"
    np.testing.assert_allclose(back.points, traj.points, rtol=1e-6)
    assert back.horizon == pytest.approx(2.0) and trajectory_error(back) is None


def test_mismatched_arrays_are_rejected_for_their_lengths() -> None:
    """Issue 13 defect 6 (failed before: "needs at least 2 waypoints, got 0")."""
    msg = trajectory_to_msg(PlannedTrajectory(0.0, np.zeros((3, 2)) + [[1, 0]], np.ones(3)))
    msg.y = [0.0]
    rejection = check_trajectory(msg_to_trajectory_fields(msg))
    assert rejection is not None and rejection.kind == "bad_shape"
    assert "lengths 3/1/3" in str(rejection) and "equal lengths" in str(rejection)
    assert trajectory_error(msg_to_trajectory(msg)) is not None


#: heading 0.4 rad about +z (REP-103: counter-clockwise, z up) as a quaternion (x, y, z, w) =
#: (0, 0, sin 0.2, cos 0.2), written out here, not computed by minipamayo_ros.geometry
YAW_04 = (0.0, 0.0, 0.19866933079506122, 0.9800665778412416)


def test_odometry_to_sample() -> None:
    msg = Odometry()
    msg.header.stamp = sec_to_time(1.5)
    msg.pose.pose.position.x, msg.pose.pose.position.y = 3.0, -1.0
    o = msg.pose.pose.orientation
    o.x, o.y, o.z, o.w = YAW_04
    msg.twist.twist.linear.x, msg.twist.twist.angular.z = 4.0, 0.2
    s = odometry_to_sample(msg)
    assert (s.stamp, s.pose.x, s.pose.y, s.speed, s.yaw_rate) == pytest.approx((1.5, 3.0, -1.0, 4.0, 0.2))
    assert s.pose.yaw == pytest.approx(0.4)


def test_sample_to_odometry() -> None:
    msg = sample_to_odometry(OdometrySample(2.25, Pose2D(3.0, -1.0, 0.4), speed=4.0, yaw_rate=0.2))
    assert time_to_sec(msg.header.stamp) == pytest.approx(2.25)
    assert (msg.header.frame_id, msg.child_frame_id) == ("odom", "base_link")
    o = msg.pose.pose.orientation
    np.testing.assert_allclose((o.x, o.y, o.z, o.w), YAW_04, atol=1e-12)
    assert (msg.pose.pose.position.x, msg.pose.pose.position.y) == (3.0, -1.0)
    assert (msg.twist.twist.linear.x, msg.twist.twist.angular.z) == (4.0, 0.2)


def _random_odometry(rng: np.random.Generator, k: int) -> Odometry:
    msg = Odometry()
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(rng.integers(0, 2**31)), int(rng.integers(0, 10**9))
    msg.header.frame_id = "o" * (k % 9)            # every alignment of the strings that follow
    msg.child_frame_id = "b" * ((k // 9) % 9)
    specials = [math.nan, math.inf, -math.inf, -0.0, 1e308]
    vals = [float(v) for v in rng.normal(0.0, 100.0, 13)]
    if k % 5 == 0:
        vals[k % 13] = specials[k % len(specials)]
    p, q, tw = msg.pose.pose.position, msg.pose.pose.orientation, msg.twist.twist
    p.x, p.y, p.z, q.x, q.y, q.z, q.w = vals[:7]
    tw.linear.x, tw.linear.y, tw.linear.z, tw.angular.x, tw.angular.y, tw.angular.z = vals[7:]
    msg.pose.covariance = rng.normal(size=36)
    msg.twist.covariance = rng.normal(size=36)
    return msg


def test_odometry_parsed_from_cdr_equals_rclpys_conversion() -> None:
    """The follower's raw odometry path reads the same nine fields as rclpy's message (NaN/inf kept
    for the safety gate), for frame ids of every length (each alignment of what follows)."""
    rng = np.random.default_rng(7)
    for k in range(200):
        msg = _random_odometry(rng, k)
        got, want = odometry_fields_from_cdr(serialize_message(msg)), odometry_to_fields(msg)
        for name in ("stamp", "x", "y", "qx", "qy", "qz", "qw", "speed", "yaw_rate"):
            a, b = getattr(got, name), getattr(want, name)
            assert a == b or (math.isnan(a) and math.isnan(b)), (k, name, a, b)


def test_odometry_from_big_endian_cdr() -> None:
    """A big-endian writer (encapsulation 0x0000) is read as such."""
    def s(text: bytes) -> bytes:
        return struct.pack(">I", len(text) + 1) + text + b"\0"
    body = struct.pack(">iI", 12, 500_000_000) + s(b"odom")          # 17 bytes
    body += b"\0" * 3 + s(b"base_link")                             # aligned to 4: 20 + 14 = 34
    body += b"\0" * 6                                                # aligned to 8: 40
    body += struct.pack(">7d", 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 1.0) + struct.pack(">36d", *[0.0] * 36)
    body += struct.pack(">6d", 3.0, 0.0, 0.0, 0.0, 0.0, 0.25) + struct.pack(">36d", *[0.0] * 36)
    f = odometry_fields_from_cdr(b"\x00\x00\x00\x00" + body)
    assert (f.stamp, f.x, f.y, f.qw, f.speed, f.yaw_rate) == (12.5, 1.0, 2.0, 1.0, 3.0, 0.25)


def test_odometry_cdr_that_cannot_be_parsed_raises_value_error() -> None:
    data = serialize_message(Odometry())
    with pytest.raises(ValueError, match="truncated"):
        odometry_fields_from_cdr(data[:100])
    with pytest.raises(ValueError, match="not plain CDR"):
        odometry_fields_from_cdr(b"\x00\x07" + data[2:])  # XCDR2: the caller falls back to rclpy


def test_serialized_odometry_falls_back_to_rclpy_when_the_parser_cannot_read_it(monkeypatch) -> None:
    """What the nodes call: the CDR parser, or rclpy's deserialisation when it refuses the data."""
    from minipamayo_ros.nodes import conversions

    msg = _random_odometry(np.random.default_rng(3), 4)
    data = serialize_message(msg)
    assert odometry_fields_from_serialized(data) == odometry_fields_from_cdr(data)

    def refuse(_data: bytes) -> None:
        raise ValueError("not plain CDR")

    monkeypatch.setattr(conversions, "odometry_fields_from_cdr", refuse)
    assert odometry_fields_from_serialized(data) == odometry_to_fields(msg)


def test_camera_messages_parsed_from_cdr_equal_rclpys() -> None:
    """The policy node takes camera messages serialized (docs/latency.md §5c): every field it reads
    equals rclpy's deserialisation, for odd frame_id/encoding lengths (CDR alignment) and sizes."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CompressedImage, Image

    from minipamayo_ros.nodes.image_conversions import (
        camera_message_from_serialized,
        compressed_image_from_cdr,
        image_from_cdr,
    )

    rng = np.random.default_rng(3)
    for i in range(60):
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        enc = ["rgb8", "bgr8", "mono8", "rgba8", "x"][i % 5]
        step = w * 3 + int(rng.integers(0, 5))
        msg = Image(height=h, width=w, encoding=enc, step=step, is_bigendian=i % 2)
        msg.header.frame_id = "c" * int(rng.integers(0, 9))
        msg.header.stamp.sec = int(rng.integers(0, 2**31))
        msg.header.stamp.nanosec = int(rng.integers(0, 10**9))
        msg.data = rng.integers(0, 256, step * h + i % 3, dtype=np.uint8).tobytes()
        raw = serialize_message(msg)
        ref, got = deserialize_message(raw, Image), image_from_cdr(raw)
        assert (got.header.stamp.sec, got.header.stamp.nanosec, got.header.frame_id) == (
            ref.header.stamp.sec, ref.header.stamp.nanosec, ref.header.frame_id)
        assert (got.height, got.width, got.encoding, got.is_bigendian, got.step) == (
            ref.height, ref.width, ref.encoding, ref.is_bigendian, ref.step)
        assert bytes(got.data) == bytes(ref.data)
        cmsg = CompressedImage(format=["jpeg", "png", "rgb8; jpeg compressed bgr8"][i % 3])
        cmsg.header = msg.header
        cmsg.data = msg.data[: int(rng.integers(0, 50))]
        craw = serialize_message(cmsg)
        cref, cgot = deserialize_message(craw, CompressedImage), compressed_image_from_cdr(craw)
        assert (cgot.header.frame_id, cgot.format, bytes(cgot.data)) == (
            cref.header.frame_id, cref.format, bytes(cref.data))
        assert camera_message_from_serialized(craw, compressed=True).format == cref.format
    with pytest.raises(ValueError, match="truncated|does not fit|bad string"):
        image_from_cdr(raw[:-5])
    other = b"\x00\x07" + raw[2:]  # an encapsulation the parser does not read: rclpy's path
    with pytest.raises(ValueError, match="not plain CDR"):
        image_from_cdr(other)
