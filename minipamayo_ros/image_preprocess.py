"""Camera image -> model input, one implementation for training data and the runtime.

The model takes ``(H, W, 3)`` uint8 RGB at its input size (normalisation happens inside the
exported graph). The simulator's dataset generator and the policy node both call
:func:`resize_to_model`, so training and runtime see identical pixels.
"""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np
from numpy.typing import NDArray


def resize_to_model(image_rgb: NDArray[np.uint8], size: tuple[int, int]) -> NDArray[np.uint8]:
    """Resize an ``(h, w, 3)`` uint8 RGB image to ``size = (height, width)``.

    The image is first centre-cropped to the target aspect ratio (no distortion of the road
    geometry the model learned), then resized with area interpolation (anti-aliased downscale).
    """
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise ValueError(f"expected (h, w, 3) uint8 RGB, got {image_rgb.shape} {image_rgb.dtype}")
    th, tw = size
    h, w = image_rgb.shape[:2]
    target_ratio = tw / th
    if abs(w / h - target_ratio) > 1e-6:
        if w / h > target_ratio:  # too wide: crop columns
            cw = int(round(h * target_ratio))
            x0 = (w - cw) // 2
            image_rgb = image_rgb[:, x0:x0 + cw]
        else:  # too tall: crop rows
            ch = int(round(w / target_ratio))
            y0 = (h - ch) // 2
            image_rgb = image_rgb[y0:y0 + ch]
    if image_rgb.shape[:2] == (th, tw):
        return np.ascontiguousarray(image_rgb)
    # cv2 keeps the input's dtype (its stubs type every image as integer | floating)
    return cast(NDArray[np.uint8], cv2.resize(image_rgb, (tw, th), interpolation=cv2.INTER_AREA))
