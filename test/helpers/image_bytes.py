"""Raw image payloads written from the sensor_msgs encoding definitions, independently of the code
under test (``policy.image_decode``): plain numpy channel indexing, no OpenCV, no shared table.

A channel-order mistake in the decoder's table then cannot be mirrored here by construction.
"""

from __future__ import annotations

import numpy as np

ALPHA = 77  # any alpha value: it must be dropped, never reach the model


def raw_bytes(rgb: np.ndarray, encoding: str) -> bytes:
    """``(h, w, 3)`` RGB -> the byte layout of ``encoding`` (sensor_msgs/image_encodings.h)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    if encoding == "mono8":  # one intensity byte per pixel: only a grey image has one
        assert np.array_equal(r, g) and np.array_equal(g, b), "mono8 needs a grey image"
        return np.ascontiguousarray(r).tobytes()
    alpha = np.full_like(r, ALPHA)
    planes = {
        "rgb8": (r, g, b),
        "bgr8": (b, g, r),
        "rgba8": (r, g, b, alpha),
        "bgra8": (b, g, r, alpha),
    }[encoding]
    return np.ascontiguousarray(np.stack(planes, axis=-1)).tobytes()
