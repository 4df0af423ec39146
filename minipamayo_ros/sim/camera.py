"""Pinhole camera mounted on the vehicle: projection of body-frame points to pixels and back.

Body frame = base_link (REP-103: x forward, y left, z up; origin on the ground under the rear
axle). The camera sits at ``(x_offset, 0, height)``, looks forward, pitched down by ``pitch``
[rad]. Pixel ``(u, v)``: u to the right, v down, origin at the top-left pixel corner.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class CameraConfig:
    """Mounting and intrinsics of the simulated camera (m, rad, pixels)."""

    width: int = 256
    height: int = 256
    hfov: float = float(np.deg2rad(80.0))  # [rad] horizontal field of view
    mount_height: float = 1.4        # [m] above the ground
    pitch: float = 0.15              # [rad] downwards tilt
    x_offset: float = 1.5            # [m] ahead of base_link
    near: float = 0.3                # [m] near clipping distance along the optical axis
    max_range: float = 80.0          # [m] farthest rendered road

    def __post_init__(self) -> None:
        if not (64 <= self.width <= 1024 and 64 <= self.height <= 1024):
            raise ValueError(f"camera size {self.width}x{self.height} outside 64..1024 px")
        if not np.deg2rad(30.0) <= self.hfov <= np.deg2rad(150.0):
            raise ValueError(f"camera hfov {np.rad2deg(self.hfov):.0f} deg outside 30..150 deg")
        if self.mount_height <= 0.0:
            raise ValueError("camera mount_height must be > 0 m")
        if not -0.5 <= self.pitch <= 0.8:
            raise ValueError(f"camera pitch {self.pitch} rad outside -0.5..0.8")

    @property
    def fx(self) -> float:
        return (self.width / 2.0) / np.tan(self.hfov / 2.0)

    @property
    def fy(self) -> float:
        return self.fx  # square pixels

    @property
    def cx(self) -> float:
        return self.width / 2.0

    @property
    def cy(self) -> float:
        return self.height / 2.0

    @property
    def horizon_row(self) -> float:
        """Image row [px] of the horizon (rays parallel to the ground)."""
        return self.cy - self.fy * np.tan(self.pitch)


def body_to_camera(cfg: CameraConfig, points: FloatArray) -> FloatArray:
    """``(..., 3)`` body-frame points -> optical frame ``(..., 3)`` (x right, y down, z forward)."""
    p = np.asarray(points, dtype=np.float64)
    dx = p[..., 0] - cfg.x_offset
    dy = p[..., 1]
    dz = p[..., 2] - cfg.mount_height
    c, s = np.cos(cfg.pitch), np.sin(cfg.pitch)
    return np.stack((-dy, -dx * s - dz * c, dx * c - dz * s), axis=-1)


def project(cfg: CameraConfig, points: FloatArray) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Pixels ``(..., 2)`` of body-frame points and a mask of those in front of the near plane."""
    cam = body_to_camera(cfg, points)
    z = cam[..., 2]
    valid = z > cfg.near
    zs = np.where(valid, z, 1.0)
    uv = np.stack((cfg.cx + cfg.fx * cam[..., 0] / zs, cfg.cy + cfg.fy * cam[..., 1] / zs), axis=-1)
    return uv, valid


def pixel_to_ground(cfg: CameraConfig, uv: FloatArray) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Body-frame ground points ``(..., 2)`` seen at pixels ``uv`` (mask: the ray hits the ground)."""
    uv = np.asarray(uv, dtype=np.float64)
    xc = (uv[..., 0] - cfg.cx) / cfg.fx
    yc = (uv[..., 1] - cfg.cy) / cfg.fy
    c, s = np.cos(cfg.pitch), np.sin(cfg.pitch)
    # ray direction in body frame for optical direction (xc, yc, 1)
    dx = -yc * s + c
    dy = -xc
    dz = -yc * c - s
    hits = dz < -1e-9
    t = np.where(hits, cfg.mount_height / np.where(hits, -dz, 1.0), np.nan)
    return np.stack((cfg.x_offset + t * dx, t * dy), axis=-1), hits
