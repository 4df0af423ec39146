"""Simulated wheel/IMU odometry: the true twist with optional noise, scale error and yaw-rate bias.

With all noise terms zero the odometry equals the ground truth. Otherwise the pose is dead
reckoned from the noisy twist (so it drifts, as real odometry does) starting at the true pose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minipamayo_ros.geometry import Pose2D, wrap_angle
from minipamayo_ros.pose_history import OdometrySample


@dataclass(frozen=True)
class OdometryNoise:
    speed_std: float = 0.0       # [m/s] white noise on the reported speed
    yaw_rate_std: float = 0.0    # [rad/s] white noise on the reported yaw rate
    speed_scale: float = 1.0     # wheel-radius scale error (1.0 = exact)
    yaw_rate_bias: float = 0.0   # [rad/s] gyro bias

    @property
    def exact(self) -> bool:
        return (self.speed_std == 0.0 and self.yaw_rate_std == 0.0 and self.speed_scale == 1.0
                and self.yaw_rate_bias == 0.0)


class OdometryModel:
    """Integrates the noisy twist at the physics rate (deterministic for a seed)."""

    def __init__(self, noise: OdometryNoise, seed: int) -> None:
        self.noise = noise
        self._rng = np.random.default_rng([int(seed), 0x4F_44_4F])  # "ODO"
        self.pose = Pose2D()
        self.speed = 0.0
        self.yaw_rate = 0.0

    def reset(self, pose: Pose2D) -> None:
        self.pose, self.speed, self.yaw_rate = pose, 0.0, 0.0

    def update(self, true_pose: Pose2D, speed: float, yaw_rate: float, dt: float) -> None:
        n = self.noise
        if n.exact:
            self.pose, self.speed, self.yaw_rate = true_pose, speed, yaw_rate
            return
        v = speed * n.speed_scale + (self._rng.normal(0.0, n.speed_std) if n.speed_std > 0 else 0.0)
        w = yaw_rate + n.yaw_rate_bias + (
            self._rng.normal(0.0, n.yaw_rate_std) if n.yaw_rate_std > 0 else 0.0)
        mid = self.pose.yaw + 0.5 * w * dt
        self.pose = Pose2D(self.pose.x + v * np.cos(mid) * dt, self.pose.y + v * np.sin(mid) * dt,
                           float(wrap_angle(self.pose.yaw + w * dt)))
        self.speed, self.yaw_rate = float(v), float(w)

    def sample(self, stamp: float) -> OdometrySample:
        return OdometrySample(stamp=stamp, pose=self.pose, speed=self.speed, yaw_rate=self.yaw_rate)
