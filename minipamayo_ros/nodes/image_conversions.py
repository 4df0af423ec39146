"""Camera messages -> the policy's :class:`~minipamayo_ros.policy.pipeline.Frame`, with the arrival
check's verdict: what the policy node does in its image callback, and what the lock-step bag replay
does with each bag image (one code path).

Fields are read by name, so rclpy and ``rosbags`` messages alike are taken (no ROS package is
imported). Apart from ``nodes.conversions`` so that the follower and simulator processes do not
load OpenCV and the policy pipeline.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from minipamayo_ros.nodes.conversions import time_to_sec
from minipamayo_ros.policy.image_decode import channels_or_none, compressed_to_rgb, raw_to_rgb
from minipamayo_ros.policy.pipeline import Frame
from minipamayo_ros.safety.image_input import check_compressed_image, check_raw_image
from minipamayo_ros.safety.rejection import Rejection


def image_to_frame(msg: Any, now: float, max_future: float, max_age: float, encoding_override: str = "",
                   received_steady: float = math.nan) -> tuple[Frame, Rejection | None]:
    """sensor_msgs/Image (rclpy or rosbags) -> the policy's :class:`Frame` (decoding deferred to
    the worker) and the arrival check's verdict (``safety.image_input``; None = accepted).

    ``now`` [s]: the ROS clock at arrival; ``encoding_override``: the policy parameter of that name."""
    encoding = encoding_override or msg.encoding
    stamp = time_to_sec(msg.header.stamp)
    rejection = check_raw_image(stamp, now, max_future, len(msg.data), msg.height, msg.width, encoding,
                                channels_or_none(encoding), msg.step, max_age)
    decode = partial(raw_to_rgb, msg.data, msg.height, msg.width, encoding, msg.step)
    frame = Frame(stamp=stamp, decode=decode, description=f"{msg.width}x{msg.height} '{encoding}' image",
                  received=now, received_steady=received_steady)
    return frame, rejection


def compressed_to_frame(msg: Any, now: float, max_future: float, max_age: float,
                        received_steady: float = math.nan) -> tuple[Frame, Rejection | None]:
    """sensor_msgs/CompressedImage (rclpy or rosbags) -> :class:`Frame` and the arrival check's verdict."""
    stamp = time_to_sec(msg.header.stamp)
    rejection = check_compressed_image(stamp, now, max_future, len(msg.data), max_age)
    frame = Frame(stamp=stamp, decode=partial(compressed_to_rgb, msg.data, msg.format),
                  description=f"compressed '{msg.format}' image", received=now,
                  received_steady=received_steady)
    return frame, rejection
