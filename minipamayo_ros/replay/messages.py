"""Build bag messages (``rosbags`` typestore objects) from core data, and read outputs back. ROS-free.

The field mapping is the nodes' (``nodes/conversions.py``, the simulator node), so a bag written
here decodes exactly like one recorded from the running stack.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from minipamayo_ros.geometry import quaternion_from_yaw
from minipamayo_ros.pose_history import OdometrySample
from minipamayo_ros.replay.bagio import header_msg, stamp_ns, time_msg, typestore
from minipamayo_ros.replay.records import ExplanationRecord, TrajectoryRecord
from minipamayo_ros.trajectory import NUM_WAYPOINTS, WAYPOINT_DT


def _t(name: str) -> Any:
    return typestore().types[name]


def string_msg(text: str) -> Any:
    return _t("std_msgs/msg/String")(data=text)


def image_msg(stamp: int, rgb: NDArray[np.uint8], frame_id: str = "camera") -> Any:
    h, w = rgb.shape[:2]
    return _t("sensor_msgs/msg/Image")(
        header=header_msg(stamp, frame_id),
        height=h,
        width=w,
        encoding="rgb8",
        is_bigendian=0,
        step=w * 3,
        data=np.ascontiguousarray(rgb, dtype=np.uint8).reshape(-1),
    )


def compressed_image_msg(
    stamp: int,
    rgb: NDArray[np.uint8],
    fmt: str = "png",
    frame_id: str = "camera",
    jpeg_quality: int = 90,
    png_level: int = 9,
) -> Any:
    """PNG (lossless: decodes to the same pixels everywhere) or JPEG, as image_transport names them."""
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    params = (
        [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
        if fmt == "jpeg"
        else [cv2.IMWRITE_PNG_COMPRESSION, png_level]
    )
    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", bgr, params)
    if not ok:
        raise ValueError(f"could not encode a {rgb.shape} image as {fmt}")
    fmt_field = f"rgb8; {fmt} compressed bgr8"
    return _t("sensor_msgs/msg/CompressedImage")(
        header=header_msg(stamp, frame_id), format=fmt_field, data=buf.reshape(-1).astype(np.uint8)
    )


def odometry_msg(stamp: int, sample: OdometrySample, frame_id: str = "odom", child: str = "base_link") -> Any:
    T = typestore().types
    qx, qy, qz, qw = quaternion_from_yaw(sample.pose.yaw)
    pose = T["geometry_msgs/msg/PoseWithCovariance"](
        pose=T["geometry_msgs/msg/Pose"](
            position=T["geometry_msgs/msg/Point"](x=float(sample.pose.x), y=float(sample.pose.y), z=0.0),
            orientation=T["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw),
        ),
        covariance=np.zeros(36, np.float64),
    )
    vec = T["geometry_msgs/msg/Vector3"]
    twist = T["geometry_msgs/msg/TwistWithCovariance"](
        twist=T["geometry_msgs/msg/Twist"](
            linear=vec(x=float(sample.speed), y=0.0, z=0.0),
            angular=vec(x=0.0, y=0.0, z=float(sample.yaw_rate)),
        ),
        covariance=np.zeros(36, np.float64),
    )
    return T["nav_msgs/msg/Odometry"](
        header=header_msg(stamp, frame_id), child_frame_id=child, pose=pose, twist=twist
    )


def clock_msg(stamp: int) -> Any:
    return _t("rosgraph_msgs/msg/Clock")(clock=time_msg(stamp))


def trajectory_msg(rec: TrajectoryRecord, frame_id: str = "base_link") -> Any:
    n = len(rec.x)
    return _t("minipamayo_ros/msg/Trajectory")(
        header=header_msg(rec.stamp_ns, frame_id),
        sequence=int(rec.sequence),
        producer="",  # replayed outputs: no producing node (a follower never takes them for its policy's)
        producer_instance=0,
        dt=WAYPOINT_DT,
        horizon=n * WAYPOINT_DT,
        x=np.asarray(rec.x, np.float32),
        y=np.asarray(rec.y, np.float32),
        speed=np.asarray(rec.speed, np.float32),
        uncertainty=float(rec.uncertainty),
        model_id=rec.model_id,
        inference_latency_ms=_finite(rec.inference_ms),
        end_to_end_latency_ms=_finite(rec.total_ms),
    )


def trajectory_record(msg: Any) -> TrajectoryRecord:
    """A Trajectory message (rosbags or rclpy) -> record (float32 values widened exactly)."""
    return TrajectoryRecord(
        stamp_ns=stamp_ns(msg.header),
        sequence=int(msg.sequence),
        x=[float(v) for v in np.asarray(msg.x, np.float32)],
        y=[float(v) for v in np.asarray(msg.y, np.float32)],
        speed=[float(v) for v in np.asarray(msg.speed, np.float32)],
        uncertainty=float(np.float32(msg.uncertainty)),
        model_id=str(msg.model_id),
        inference_ms=float(msg.inference_latency_ms),
        total_ms=float(msg.end_to_end_latency_ms),
    )


def explanation_record(msg: Any) -> ExplanationRecord:
    return ExplanationRecord(
        stamp_ns=stamp_ns(msg.header),
        event=int(msg.event),
        text=str(msg.text),
        token_ids=[int(v) for v in np.asarray(msg.token_ids)],
        sequence=int(msg.trajectory_sequence),
        situation=int(getattr(msg, "situation", 0)),
        generation_ms=float(msg.generation_latency_ms),
    )


def explanation_msg(rec: ExplanationRecord, model_id: str = "") -> Any:
    return _t("minipamayo_ros/msg/Explanation")(
        header=header_msg(rec.stamp_ns, "base_link"),
        trajectory_sequence=int(rec.sequence),
        event=int(rec.event),
        situation=int(rec.situation),
        text=rec.text,
        token_ids=np.asarray(rec.token_ids, np.int32),
        token_count=len(rec.token_ids),
        generation_latency_ms=_finite(rec.generation_ms),
        event_age_ms=0.0,
        truncated=False,
        model_id=model_id,
    )


def _finite(v: float) -> float:
    return float(v) if np.isfinite(v) else 0.0


assert NUM_WAYPOINTS > 0  # the layout above is the one of msg/Trajectory.msg
