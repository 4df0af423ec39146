"""Camera messages -> the policy's :class:`~minipamayo_ros.policy.pipeline.Frame`, with the arrival
check's verdict: what the policy node does in its image callback, and what the lock-step bag replay
does with each bag image (one code path).

Fields are read by name, so rclpy and ``rosbags`` messages alike are taken (no ROS package is
imported). Apart from ``nodes.conversions`` so that the follower and simulator processes do not
load OpenCV and the policy pipeline.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from functools import partial
from typing import Any

from minipamayo_ros.nodes.conversions import cdr_byte_order, time_to_sec
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


# --- serialized camera messages (a raw take: no Python message built) -----------------------------

@dataclass(frozen=True)
class Stamp:
    sec: int
    nanosec: int


@dataclass(frozen=True)
class Header:
    stamp: Stamp
    frame_id: str


@dataclass(frozen=True)
class ImageFields:
    """The fields of a serialized sensor_msgs/Image, named as the message's (:func:`image_to_frame`
    reads either); ``data`` is a view into the serialized buffer (no copy of the pixels)."""

    header: Header
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: memoryview


@dataclass(frozen=True)
class CompressedImageFields:
    """The fields of a serialized sensor_msgs/CompressedImage, named as the message's."""

    header: Header
    format: str
    data: memoryview


def _cdr_string(data: bytes, order: str, off: int) -> tuple[str, int]:
    """The CDR string at body offset ``off`` (uint32 length with the NUL, then the bytes) and the
    offset after it. Offsets count from the end of the 4-byte encapsulation header."""
    off = (off + 3) & ~3
    (n,) = struct.unpack_from(order + "I", data, 4 + off)
    start = 4 + off + 4
    if n == 0 or start + n > len(data):
        raise ValueError(f"bad string length {n} at offset {off}")
    return bytes(data[start:start + n - 1]).decode("utf-8", "replace"), off + 4 + n


def _cdr_header(data: bytes, order: str) -> tuple[Header, int]:
    sec, nanosec = struct.unpack_from(order + "iI", data, 4)
    frame_id, off = _cdr_string(data, order, 8)
    return Header(Stamp(sec, nanosec), frame_id), off


def _cdr_bytes(data: bytes, order: str, off: int) -> memoryview:
    off = (off + 3) & ~3
    (n,) = struct.unpack_from(order + "I", data, 4 + off)
    start = 4 + off + 4
    if start + n > len(data):
        raise ValueError(f"data of {n} bytes does not fit the {len(data)}-byte message")
    return memoryview(data)[start:start + n]


def image_from_cdr(data: bytes) -> ImageFields:
    """Serialized sensor_msgs/Image (plain CDR, as a raw ``take_message`` returns it) -> its fields.

    Why: rclpy builds a Python message and copies the pixels into it (a 320x320 rgb8 image: 300 KB)
    for every frame the camera sends, most of which the rate cap drops (docs/latency.md §5c).
    Layout after the encapsulation header: header (int32 sec, uint32 nanosec, frame_id string),
    uint32 height, uint32 width, encoding string, uint8 is_bigendian, uint32 step, uint8[] data.
    Raises ``ValueError`` for another encapsulation or truncated data."""
    order = cdr_byte_order(data)
    try:
        header, off = _cdr_header(data, order)
        off = (off + 3) & ~3
        height, width = struct.unpack_from(order + "II", data, 4 + off)
        encoding, off = _cdr_string(data, order, off + 8)
        is_bigendian = data[4 + off]
        off = (off + 1 + 3) & ~3
        (step,) = struct.unpack_from(order + "I", data, 4 + off)
        pixels = _cdr_bytes(data, order, off + 4)
    except (struct.error, IndexError) as exc:
        raise ValueError(f"truncated Image ({len(data)} bytes): {exc}") from exc
    return ImageFields(header, height, width, encoding, is_bigendian, step, pixels)


def compressed_image_from_cdr(data: bytes) -> CompressedImageFields:
    """Serialized sensor_msgs/CompressedImage (plain CDR) -> its fields (header, format string,
    uint8[] data); ``ValueError`` as :func:`image_from_cdr`."""
    order = cdr_byte_order(data)
    try:
        header, off = _cdr_header(data, order)
        fmt, off = _cdr_string(data, order, off)
        payload = _cdr_bytes(data, order, off)
    except (struct.error, IndexError) as exc:
        raise ValueError(f"truncated CompressedImage ({len(data)} bytes): {exc}") from exc
    return CompressedImageFields(header, fmt, payload)


def camera_message_from_serialized(data: bytes, compressed: bool) -> Any:
    """A raw-taken camera message -> its fields (:func:`image_from_cdr` /
    :func:`compressed_image_from_cdr`), or rclpy's deserialisation for an encapsulation those do
    not read (e.g. XCDR2). Either way the result reads like the message."""
    try:
        return compressed_image_from_cdr(data) if compressed else image_from_cdr(data)
    except ValueError:
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import CompressedImage, Image

        return deserialize_message(data, CompressedImage if compressed else Image)
