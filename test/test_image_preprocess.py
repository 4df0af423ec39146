"""Shared image preprocessing."""

from __future__ import annotations

import numpy as np
import pytest

from minipamayo_ros.image_preprocess import resize_to_model


def test_resize_keeps_colour_and_shape() -> None:
    img = np.zeros((256, 256, 3), np.uint8)
    img[..., 0] = 200
    out = resize_to_model(img, (128, 128))
    assert out.shape == (128, 128, 3) and out.dtype == np.uint8
    assert np.all(out[..., 0] == 200) and np.all(out[..., 1] == 0)


def test_centre_crop_for_other_aspect_ratio() -> None:
    img = np.zeros((240, 320, 3), np.uint8)
    img[:, :40] = 255  # left band that must be cropped away for a square output
    out = resize_to_model(img, (120, 120))
    assert out.shape == (120, 120, 3) and out.max() == 0


def test_rejects_wrong_layout() -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        resize_to_model(np.zeros((10, 10), np.uint8), (5, 5))
