"""Core <-> message conversions of the data path: odometry, camera images, trajectories, control
commands, stamps. Nodes, tools and tests call these instead of filling those fields themselves, so a
unit, frame or dtype choice is made once (and the offline evaluation, bag replay and the DDS tests
feed and read exactly what the nodes publish). Per-node presentation messages (``/diagnostics``,
the RViz ``/vla/path``, the follower's lookahead marker) are built by their node.

The message -> core half (:func:`odometry_to_fields`, :func:`msg_to_trajectory_fields`,
:func:`time_to_sec`; camera images: ``nodes.image_conversions``) only reads fields by name, so it
takes rclpy messages and ``rosbags`` messages alike and imports no ROS package: the lock-step bag
replay (no ROS distro needed) feeds bag messages through these very functions and the node's
input checks (``safety``). The core -> message half imports the message classes when called.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from minipamayo_ros.control.follower import FollowerCommand
from minipamayo_ros.geometry import Pose2D, quaternion_from_yaw, yaw_from_quaternion
from minipamayo_ros.pose_history import OdometrySample
from minipamayo_ros.safety.odometry_input import OdometryFields
from minipamayo_ros.safety.trajectory_input import TrajectoryFields
from minipamayo_ros.trajectory import PlannedTrajectory

if TYPE_CHECKING:
    from builtin_interfaces.msg import Time
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import Image

    from minipamayo_ros.msg import ControlCommand, Trajectory


def time_to_sec(t: Time) -> float:
    """builtin_interfaces/Time -> float seconds."""
    return t.sec + t.nanosec * 1e-9


def sec_to_time(seconds: float) -> Time:
    """float seconds (>= 0) -> builtin_interfaces/Time (rounded to the nanosecond)."""
    from builtin_interfaces.msg import Time

    return set_time(Time(), seconds)


def set_time(t: Time, seconds: float) -> Time:
    """Write float seconds (>= 0) into an existing Time (a reused message: no object per call)."""
    ns = int(round(seconds * 1e9))
    t.sec, t.nanosec = ns // 1_000_000_000, ns % 1_000_000_000
    return t


def odometry_to_fields(msg: Odometry) -> OdometryFields:
    """nav_msgs/Odometry (rclpy or rosbags) -> the unvalidated fields the nodes validate
    (``safety.odometry_input``; the quaternion is checked there, never rebuilt here)."""
    p, q, tw = msg.pose.pose.position, msg.pose.pose.orientation, msg.twist.twist
    return OdometryFields(time_to_sec(msg.header.stamp), p.x, p.y, q.x, q.y, q.z, q.w, tw.linear.x,
                          tw.angular.z)


#: CDR encapsulation ids (first two bytes of a serialized message): plain CDR, big / little endian
_CDR_BYTE_ORDER = {b"\x00\x00": ">", b"\x00\x01": "<"}
_POSE_COVARIANCE_BYTES = 36 * 8


def cdr_byte_order(data: bytes) -> str:
    """The ``struct`` byte order of a serialized message in plain CDR; ``ValueError`` otherwise."""
    order = _CDR_BYTE_ORDER.get(bytes(data[:2]))
    if order is None:
        raise ValueError(f"not plain CDR (encapsulation {bytes(data[:2]).hex()})")
    return order


def odometry_fields_from_cdr(data: bytes) -> OdometryFields:
    """Serialized nav_msgs/Odometry (plain CDR, as a raw ``take_message`` returns it) -> the same
    fields as :func:`odometry_to_fields`, without building the Python message.

    Why: rclpy's conversion of an Odometry (two 36-double covariances, nested messages) costs
    ~60 us on the development box, the parse of the nine fields used ~1 us; the follower takes 50-100
    a second (docs/latency.md, "CPU per node"). Raises ``ValueError`` for an encapsulation other
    than plain CDR (the caller falls back to ``rclpy.serialization``) or truncated data.

    Layout (offsets after the 4-byte encapsulation header, aligned to the field size from there):
    header.stamp (int32 sec, uint32 nanosec), header.frame_id and child_frame_id (uint32 length
    with the terminating NUL, then the bytes), pose.pose (7 float64), pose.covariance (36 float64),
    twist.twist (6 float64), twist.covariance.
    """
    order = cdr_byte_order(data)
    try:
        sec, nanosec, frame_len = struct.unpack_from(order + "iII", data, 4)
        off = (12 + frame_len + 3) & ~3
        (child_len,) = struct.unpack_from(order + "I", data, 4 + off)
        off = (off + 4 + child_len + 7) & ~7
        x, y, _z, qx, qy, qz, qw = struct.unpack_from(order + "7d", data, 4 + off)
        twist = struct.unpack_from(order + "6d", data, 4 + off + 56 + _POSE_COVARIANCE_BYTES)
    except struct.error as exc:
        raise ValueError(f"truncated Odometry ({len(data)} bytes): {exc}") from exc
    return OdometryFields(sec + nanosec * 1e-9, x, y, qx, qy, qz, qw, twist[0], twist[5])


def odometry_fields_from_serialized(data: bytes) -> OdometryFields:
    """A raw-taken nav_msgs/Odometry -> its fields: :func:`odometry_fields_from_cdr`, or rclpy's own
    deserialisation for an encapsulation that function does not read (e.g. XCDR2)."""
    try:
        return odometry_fields_from_cdr(data)
    except ValueError:
        from nav_msgs.msg import Odometry
        from rclpy.serialization import deserialize_message

        return odometry_to_fields(deserialize_message(data, Odometry))


def odometry_to_sample(msg: Odometry) -> OdometrySample:
    """nav_msgs/Odometry (pose in odom, twist in the child/body frame) -> OdometrySample.

    Unvalidated (recording, tests); nodes use :func:`odometry_to_fields` and the safety core."""
    q = msg.pose.pose.orientation
    p = msg.pose.pose.position
    return OdometrySample(
        stamp=time_to_sec(msg.header.stamp),
        pose=Pose2D(p.x, p.y, yaw_from_quaternion(q.x, q.y, q.z, q.w)),
        speed=msg.twist.twist.linear.x,
        yaw_rate=msg.twist.twist.angular.z,
    )


def trajectory_to_msg(traj: PlannedTrajectory) -> Trajectory:
    from minipamayo_ros.msg import Trajectory

    msg = Trajectory()
    msg.header.stamp = sec_to_time(traj.stamp)
    msg.header.frame_id = traj.frame_id
    msg.sequence = int(traj.sequence)
    msg.producer = traj.producer
    msg.producer_instance = int(traj.producer_instance)
    msg.dt = float(traj.dt)
    msg.horizon = float(traj.horizon)
    pts = np.asarray(traj.points, dtype=np.float32)
    # array.array assignment via numpy is ~100x faster than Python lists for rosidl arrays
    msg.x = pts[:, 0].copy()
    msg.y = pts[:, 1].copy()
    msg.speed = np.asarray(traj.speeds, dtype=np.float32)
    msg.uncertainty = float(traj.uncertainty)
    msg.model_id = traj.model_id
    msg.inference_latency_ms = float(traj.inference_latency_ms)
    msg.end_to_end_latency_ms = float(traj.end_to_end_latency_ms)
    return msg


def msg_to_trajectory_fields(msg: Trajectory) -> TrajectoryFields:
    """Trajectory message -> its unvalidated fields (validated by ``safety.trajectory_input``)."""
    return TrajectoryFields(
        stamp=time_to_sec(msg.header.stamp),
        frame_id=msg.header.frame_id,
        x=np.asarray(msg.x, dtype=np.float64),
        y=np.asarray(msg.y, dtype=np.float64),
        speed=np.asarray(msg.speed, dtype=np.float64),
        dt=float(msg.dt),
        uncertainty=float(msg.uncertainty),
        sequence=int(msg.sequence),
        model_id=msg.model_id,
        inference_latency_ms=float(msg.inference_latency_ms),
        end_to_end_latency_ms=float(msg.end_to_end_latency_ms),
        horizon=float(msg.horizon),
        producer=msg.producer,
        producer_instance=int(msg.producer_instance),
    )


def msg_to_trajectory(msg: Trajectory) -> PlannedTrajectory:
    """Trajectory message -> core trajectory, unvalidated (x/y of different lengths are cut to the
    shorter); the follower validates the fields with ``safety.trajectory_input`` instead."""
    return msg_to_trajectory_fields(msg).to_trajectory()


def sample_to_odometry(sample: OdometrySample, frame_id: str = "odom", child_frame_id: str = "base_link",
                       stamp: float | None = None) -> Odometry:
    """OdometrySample -> nav_msgs/Odometry (pose in ``frame_id``, twist in ``child_frame_id``).

    ``stamp`` [s] overrides the sample's stamp (the simulator's restamped outputs).
    """
    from nav_msgs.msg import Odometry

    msg = Odometry()
    msg.header.stamp = sec_to_time(sample.stamp if stamp is None else stamp)
    msg.header.frame_id = frame_id
    msg.child_frame_id = child_frame_id
    msg.pose.pose.position.x = float(sample.pose.x)
    msg.pose.pose.position.y = float(sample.pose.y)
    q = msg.pose.pose.orientation
    q.x, q.y, q.z, q.w = (float(v) for v in quaternion_from_yaw(sample.pose.yaw))
    msg.twist.twist.linear.x = float(sample.speed)
    msg.twist.twist.angular.z = float(sample.yaw_rate)
    return msg


def rgb_to_image(rgb: NDArray[np.uint8], stamp: float, frame_id: str = "camera") -> Image:
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image ``rgb8`` (what the simulator's camera publishes)."""
    from sensor_msgs.msg import Image

    img = Image()
    img.header.stamp = sec_to_time(stamp)
    img.header.frame_id = frame_id
    img.height, img.width = int(rgb.shape[0]), int(rgb.shape[1])
    img.encoding = "rgb8"
    img.is_bigendian = 0
    img.step = img.width * 3
    img.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    return img


def command_to_msg(cmd: FollowerCommand, stamp: Time | None = None,
                   frame_id: str = "base_link") -> ControlCommand:
    """Follower command -> ControlCommand (``stamp``: the ROS clock's Time; default the command's)."""
    from minipamayo_ros.msg import ControlCommand

    msg = ControlCommand()
    msg.header.frame_id = frame_id
    fill_command_msg(msg, cmd, cmd.stamp)
    if stamp is not None:
        msg.header.stamp = stamp
    return msg


def fill_command_msg(msg: ControlCommand, cmd: FollowerCommand, stamp: float) -> ControlCommand:
    """Write ``cmd`` into an existing ControlCommand, header stamp ``stamp`` [s] (``header.frame_id``
    is left as set): the follower reuses one message per tick instead of building one."""
    set_time(msg.header.stamp, stamp)
    msg.status = int(cmd.status)
    msg.steering_angle = float(cmd.steering_angle)
    msg.curvature = float(cmd.curvature)
    msg.speed = float(cmd.speed)
    msg.acceleration = float(cmd.acceleration)
    msg.yaw_rate = float(cmd.yaw_rate)
    set_time(msg.trajectory_stamp, cmd.trajectory_stamp)
    msg.trajectory_sequence = int(cmd.trajectory_sequence)
    msg.lookahead_point.x = float(cmd.lookahead_x)
    msg.lookahead_point.y = float(cmd.lookahead_y)
    msg.lookahead_distance = float(cmd.lookahead_distance)
    return msg
