"""Camera images at the node's edge: cheap checks in the subscription callback, before a frame
may displace a valid pending one in the latest-frame scheduler (decoding stays in the worker).

Raw images: a supported encoding, a positive size, ``step >= width * channels`` and a buffer of
exactly ``step * height`` bytes (shorter: truncated; longer: step/height/encoding are wrong).
Both kinds: a stamp at most ``max_future`` ahead of the ROS clock and at most ``max_age`` behind
it (the policy's ``max_image_age``: such a frame would be skipped at inference anyway, and must not
displace a fresher pending one meanwhile). The same layout rule is what
:func:`minipamayo_ros.policy.image_decode.raw_to_rgb` enforces when it decodes.
"""

from __future__ import annotations

import math

from minipamayo_ros.safety.rejection import BAD_ENCODING, BAD_SHAPE, Rejection
from minipamayo_ros.safety.stamps import check_stamp


def raw_layout_error(nbytes: int, height: int, width: int, encoding: str, channels: int | None,
                     step: int) -> tuple[str, object, str] | None:
    """``(field, value, why)`` if a raw image's layout is inconsistent; ``channels`` None =
    unsupported encoding; ``step`` 0 = tightly packed."""
    if channels is None:
        return "encoding", repr(encoding), "unsupported encoding"
    if height <= 0 or width <= 0:
        return "width x height", f"{width} x {height}", "empty image"
    row = width * channels
    step = step or row
    if step < row:
        return "step", step, f"shorter than a {encoding} row of {width} px ({row} B)"
    if nbytes != step * height:
        return "data", f"{nbytes} B", (f"expected step * height = {step * height} B for {width} x "
                                       f"{height} px {encoding}")
    return None


def check_raw_image(stamp: float, now: float, max_future: float, nbytes: int, height: int, width: int,
                    encoding: str, channels: int | None, step: int,
                    max_age: float = math.inf) -> Rejection | None:
    """Why a ``sensor_msgs/Image`` must be dropped at arrival, or None (times [s], ROS clock)."""
    bad = check_stamp(stamp, now, max_future, max_age)
    if bad is not None:
        return bad
    layout = raw_layout_error(nbytes, height, width, encoding, channels, step)
    if layout is None:
        return None
    return Rejection(BAD_ENCODING if layout[0] == "encoding" else BAD_SHAPE, *layout)


def check_compressed_image(stamp: float, now: float, max_future: float, nbytes: int,
                           max_age: float = math.inf) -> Rejection | None:
    """Why a ``sensor_msgs/CompressedImage`` must be dropped at arrival, or None."""
    bad = check_stamp(stamp, now, max_future, max_age)
    if bad is not None:
        return bad
    return Rejection(BAD_SHAPE, "data", "0 B", "empty compressed image") if nbytes == 0 else None
