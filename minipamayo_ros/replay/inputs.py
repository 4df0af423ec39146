"""Which topics of a bag feed the policy, and bag camera messages -> the policy's frames. ROS-free.

The camera is ``sensor_msgs/Image`` on the configured ``image_topic``, or
``sensor_msgs/CompressedImage`` on that topic or on ``<image_topic>/compressed`` (the
image_transport convention). Relative topic names resolve in the namespace the recorded stack ran
in (``namespace``; the bag holds absolute names). Bag messages become inputs through the node's
own functions (``nodes.conversions``, ``nodes.image_conversions``) and input checks (``safety``),
never a copy of them; images are decoded lazily: frames the scheduler drops are never decoded, as
in the node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from minipamayo_ros.nodes.image_conversions import compressed_to_frame, image_to_frame
from minipamayo_ros.policy.pipeline import Frame
from minipamayo_ros.replay.bagio import COMPRESSED_IMAGE, IMAGE, ODOMETRY, BagError, BagInfo
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


def resolve_name(name: str, namespace: str = "") -> str:
    """A topic name as ROS resolves it in ``namespace``: relative names (``odom``) go under it
    (``/car7/odom``), absolute ones (``/odom``) stay (no ``~`` names here)."""
    if name.startswith("/"):
        return name
    ns = namespace.strip("/")
    return f"/{ns}/{name}" if ns else f"/{name}"


def resolve_topics(info: BagInfo, image_topic: str, odom_topic: str, namespace: str = "") -> InputTopics:
    """The camera and odometry topics to replay, or :class:`MissingTopicError` saying what is missing.

    ``image_topic``/``odom_topic``: the policy's parameters, resolved in ``namespace``."""
    image_topic, odom_topic = resolve_name(image_topic, namespace), resolve_name(odom_topic, namespace)
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


def camera_frame(
    msg: Any, msgtype: str, now: float, max_future: float = math.inf, max_age: float = math.inf,
    encoding_override: str = "",
) -> tuple[Frame, Rejection | None]:
    """A bag camera message through the policy node's own conversion and arrival check
    (``nodes.image_conversions``: the node's callback per message type, no copy of it)."""
    if msgtype == COMPRESSED_IMAGE:
        return compressed_to_frame(msg, now, max_future, max_age)
    return image_to_frame(msg, now, max_future, max_age, encoding_override)
