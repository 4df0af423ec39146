"""Which topics of a bag feed the policy, and bag messages -> the policy core's inputs. ROS-free.

The camera is ``sensor_msgs/Image`` on the configured ``image_topic``, or
``sensor_msgs/CompressedImage`` on that topic or on ``<image_topic>/compressed`` (the
image_transport convention). Images are decoded by the node's own functions
(``policy.image_decode``), lazily: frames the scheduler drops are never decoded, as in the node.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from minipamayo_ros.geometry import Pose2D, yaw_from_quaternion
from minipamayo_ros.policy.image_decode import channels_or_none, compressed_to_rgb, raw_to_rgb
from minipamayo_ros.policy.pipeline import Frame
from minipamayo_ros.pose_history import OdometrySample
from minipamayo_ros.replay.bagio import COMPRESSED_IMAGE, IMAGE, ODOMETRY, BagError, BagInfo, stamp_ns
from minipamayo_ros.safety.image_input import check_compressed_image, check_raw_image
from minipamayo_ros.safety.rejection import Rejection

CAMERA_TYPES = (IMAGE, COMPRESSED_IMAGE)


class MissingTopicError(BagError):
    """A topic the replay needs is not in the bag (the message names it and lists the bag's topics)."""


@dataclass(frozen=True)
class InputTopics:
    image: str
    image_type: str  # IMAGE or COMPRESSED_IMAGE
    odom: str
    skipped: tuple[str, ...]  # the bag's other topics (not replayed; listed in the report)


def resolve_topics(info: BagInfo, image_topic: str, odom_topic: str) -> InputTopics:
    """The camera and odometry topics to replay, or :class:`MissingTopicError` saying what is missing."""
    paths = ", ".join(str(p) for p in info.paths)
    if info.message_count == 0:
        raise MissingTopicError(f"bag {paths} contains no messages (topics: {info.listing()})")
    cameras = info.topics_of(*CAMERA_TYPES)
    odoms = info.topics_of(ODOMETRY)
    if not cameras and not odoms:
        raise MissingTopicError(
            f"bag {paths} has no camera (sensor_msgs/Image or CompressedImage) and no odometry "
            f"(nav_msgs/Odometry) topics, so it cannot be replayed through the policy; it has: "
            f"{info.listing()}"
        )
    image = None
    for name in (image_topic, image_topic.rstrip("/") + "/compressed"):
        t = info.topic(name)
        if t is not None and t.msgtype in CAMERA_TYPES:
            image = t
            break
    if image is None:
        hint = (
            f"; camera topics in the bag: {', '.join(t.name for t in cameras)} (pass --image-topic)"
            if cameras
            else "; the bag has no camera topic at all"
        )
        raise MissingTopicError(
            f"required camera topic '{image_topic}' (sensor_msgs/Image or "
            f"CompressedImage) is not in bag {paths}{hint}. Topics: {info.listing()}"
        )
    odom = info.topic(odom_topic)
    if odom is None or odom.msgtype != ODOMETRY:
        hint = (
            f"; odometry topics in the bag: {', '.join(t.name for t in odoms)} (pass --odom-topic)"
            if odoms
            else "; the bag has no odometry topic at all"
        )
        raise MissingTopicError(
            f"required odometry topic '{odom_topic}' (nav_msgs/Odometry) is not in "
            f"bag {paths}{hint}. Topics: {info.listing()}"
        )
    skipped = tuple(t.name for t in info.topics if t.name not in (image.name, odom.name))
    return InputTopics(image.name, image.msgtype, odom.name, skipped)


def odometry_sample(msg: Any) -> OdometrySample:
    """nav_msgs/Odometry (any object with its fields) -> core sample; same mapping as the node's."""
    q = msg.pose.pose.orientation
    p = msg.pose.pose.position
    return OdometrySample(
        stamp=stamp_ns(msg.header) * 1e-9,
        pose=Pose2D(float(p.x), float(p.y), yaw_from_quaternion(q.x, q.y, q.z, q.w)),
        speed=float(msg.twist.twist.linear.x),
        yaw_rate=float(msg.twist.twist.angular.z),
    )


def camera_frame(msg: Any, msgtype: str, encoding_override: str = "") -> Frame:
    """A bag camera message -> the policy's :class:`Frame` (decoding deferred, as in the node)."""
    stamp = stamp_ns(msg.header) * 1e-9
    data = np.asarray(msg.data, dtype=np.uint8)
    if msgtype == COMPRESSED_IMAGE:
        return Frame(
            stamp=stamp,
            decode=partial(compressed_to_rgb, data, msg.format),
            description=f"compressed '{msg.format}' image",
            received=stamp,
        )
    encoding = encoding_override or msg.encoding
    return Frame(
        stamp=stamp,
        decode=partial(raw_to_rgb, data, msg.height, msg.width, encoding, msg.step),
        description=f"{msg.width}x{msg.height} '{encoding}' image",
        received=stamp,
    )


def arrival_rejection(
    msg: Any, msgtype: str, now: float, max_future: float, max_age: float, encoding_override: str = ""
) -> Rejection | None:
    """The node's cheap checks at image arrival (``safety.image_input``), before the scheduler:
    a rejected frame is dropped without taking a slot of the rate cap, as in the node."""
    stamp = stamp_ns(msg.header) * 1e-9
    if msgtype == COMPRESSED_IMAGE:
        return check_compressed_image(stamp, now, max_future, len(msg.data), max_age)
    encoding = encoding_override or msg.encoding
    return check_raw_image(
        stamp, now, max_future, len(msg.data), msg.height, msg.width, encoding, channels_or_none(encoding),
        msg.step, max_age,
    )
