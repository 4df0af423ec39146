"""Camera message payloads -> ``(h, w, 3)`` uint8 RGB, without Python per-pixel loops.

Raw images (``sensor_msgs/Image``) are viewed in place with ``np.frombuffer`` (row padding from
``step`` is sliced off) and converted by OpenCV; compressed ones (JPEG/PNG) are decoded by
``cv2.imdecode``. The result then goes through ``image_preprocess.resize_to_model``, the function
the training data was made with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import cv2
import numpy as np
from numpy.typing import NDArray

from minipamayo_ros.safety.image_input import raw_layout_error

if TYPE_CHECKING:
    import array

#: encodings accepted on raw images, with their channel count and the OpenCV conversion to RGB
_CONVERSIONS: dict[str, tuple[int, int | None]] = {
    "rgb8": (3, None),
    "bgr8": (3, cv2.COLOR_BGR2RGB),
    "rgba8": (4, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, cv2.COLOR_BGRA2RGB),
    "mono8": (1, cv2.COLOR_GRAY2RGB),
}
ENCODINGS: tuple[str, ...] = tuple(_CONVERSIONS)


class ImageError(ValueError):
    """The image cannot be used (unsupported encoding, inconsistent size, undecodable bytes)."""


def raw_to_rgb(
    data: bytes | bytearray | memoryview | array.array[int] | NDArray[np.uint8], height: int, width: int,
    encoding: str, step: int = 0,
) -> NDArray[np.uint8]:
    """A raw image buffer -> ``(height, width, 3)`` uint8 RGB.

    ``step`` is the row length in bytes (0 = tightly packed). The returned array may be a view of
    ``data`` for rgb8 input (no copy); the caller must not keep it beyond the message's life.
    """
    conv = _CONVERSIONS.get(encoding)
    if conv is None:
        raise ImageError(f"unsupported encoding '{encoding}' (supported: {', '.join(ENCODINGS)})")
    buf = np.frombuffer(data, dtype=np.uint8)
    layout = raw_layout_error(buf.size, height, width, encoding, conv[0], step)
    if layout is not None:  # the same rule the node applies at arrival (safety.image_input)
        field, value, why = layout
        raise ImageError(f"{why} ({field} {value})" if field != "data" else f"data has {value}, {why}")
    channels, code = conv
    row = width * channels
    step = step or row
    img = buf[: step * height].reshape(height, step)[:, :row].reshape(height, width, channels)
    if code is None:
        return img
    # cv2 keeps the input's dtype (its stubs type every image as integer | floating)
    return cast(NDArray[np.uint8], cv2.cvtColor(img, code))


def compressed_to_rgb(data: bytes | bytearray | memoryview | array.array[int] | NDArray[np.uint8],
                      fmt: str = "") -> NDArray[np.uint8]:
    """JPEG/PNG bytes (``sensor_msgs/CompressedImage``) -> ``(h, w, 3)`` uint8 RGB.

    The format is detected from the bytes; ``fmt`` only improves the error message.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise ImageError(f"empty compressed image (format '{fmt}')")
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f"could not decode {buf.size} B compressed image (format '{fmt}'; "
                         "JPEG/PNG expected)")
    return cast(NDArray[np.uint8], cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def channels_or_none(encoding: str) -> int | None:
    """Bytes per pixel of a supported raw encoding, None if unsupported."""
    conv = _CONVERSIONS.get(encoding)
    return conv[0] if conv is not None else None
