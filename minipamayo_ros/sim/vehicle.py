"""Kinematic bicycle model with steering limits and a first-order actuator lag.

Shared by the follower's closed-loop tests and the simulator. State is the rear-axle pose in the
world (``odom``) frame; units are SI (m, s, rad).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from minipamayo_ros.geometry import Pose2D, wrap_angle


@dataclass(frozen=True)
class VehicleParams:
    """Physical parameters of the simulated car (defaults: a small car / large robot)."""

    wheelbase: float = 2.7          # [m]
    max_steer: float = 0.5          # [rad] front-wheel angle limit
    max_steer_rate: float = 1.0     # [rad/s]
    steer_time_constant: float = 0.1  # [s] first-order lag of the steering actuator
    speed_time_constant: float = 0.3  # [s] first-order lag of the speed controller
    max_accel: float = 3.0          # [m/s^2]
    max_decel: float = 6.0          # [m/s^2] (positive number)
    max_speed: float = 20.0         # [m/s]

    def __post_init__(self) -> None:
        for name in ("wheelbase", "max_steer", "max_steer_rate", "max_accel", "max_decel",
                     "max_speed"):
            if getattr(self, name) <= 0.0:
                raise ValueError(f"VehicleParams.{name} must be > 0, got {getattr(self, name)}")
        if self.steer_time_constant < 0.0 or self.speed_time_constant < 0.0:
            raise ValueError("VehicleParams time constants must be >= 0")


@dataclass(frozen=True)
class VehicleState:
    """Rear-axle pose [m, rad] in the world frame, forward speed [m/s], front-wheel angle [rad]."""

    pose: Pose2D = Pose2D()
    speed: float = 0.0
    steer: float = 0.0


class KinematicBicycle:
    """Integrates the kinematic bicycle with explicit (semi-implicit) Euler at a fixed step."""

    def __init__(self, params: VehicleParams | None = None) -> None:
        self.params = params or VehicleParams()

    def yaw_rate(self, state: VehicleState) -> float:
        """[rad/s] yaw rate of ``state``."""
        return state.speed * np.tan(state.steer) / self.params.wheelbase

    def step(self, state: VehicleState, steer_cmd: float, speed_cmd: float, dt: float) -> VehicleState:
        """Advance ``state`` by ``dt`` seconds towards the commanded steering [rad] and speed [m/s]."""
        p = self.params
        # Plain-float math (math/min/max): this runs at >= 100 Hz far above real time, and numpy
        # scalar calls cost ~10x more than the arithmetic itself.
        # steering: clamp command, first-order lag, rate limit
        target = _clamp(steer_cmd, -p.max_steer, p.max_steer)
        alpha = 1.0 if p.steer_time_constant == 0.0 else min(1.0, dt / p.steer_time_constant)
        d_steer = _clamp(alpha * (target - state.steer), -p.max_steer_rate * dt, p.max_steer_rate * dt)
        steer = _clamp(state.steer + d_steer, -p.max_steer, p.max_steer)
        # speed: first-order lag, accel limits, forward only
        target_v = _clamp(speed_cmd, 0.0, p.max_speed)
        beta = 1.0 if p.speed_time_constant == 0.0 else min(1.0, dt / p.speed_time_constant)
        dv = _clamp(beta * (target_v - state.speed), -p.max_decel * dt, p.max_accel * dt)
        speed = max(0.0, state.speed + dv)
        # pose: integrate with the mid-step heading (second order in yaw)
        yaw_rate = speed * math.tan(steer) / p.wheelbase
        mid_yaw = state.pose.yaw + 0.5 * yaw_rate * dt
        pose = Pose2D(
            state.pose.x + speed * math.cos(mid_yaw) * dt,
            state.pose.y + speed * math.sin(mid_yaw) * dt,
            float(wrap_angle(state.pose.yaw + yaw_rate * dt)),
        )
        return replace(state, pose=pose, speed=speed, steer=steer)


@dataclass(frozen=True)
class VehicleBody:
    """Footprint of the car relative to base_link (rear axle centre) [m], for collisions and lanes."""

    length: float = 4.2
    width: float = 1.8
    rear_overhang: float = 0.8  # bumper behind the rear axle

    @property
    def front(self) -> float:
        """[m] front bumper ahead of base_link."""
        return self.length - self.rear_overhang

    def corners(self) -> np.ndarray:
        """``(4, 2)`` footprint corners in base_link: rear-right, front-right, front-left, rear-left."""
        r, f, w = -self.rear_overhang, self.front, self.width / 2
        return np.array([[r, -w], [f, -w], [f, w], [r, w]])


def _clamp(value: float, lo: float, hi: float) -> float:
    return float(min(max(value, lo), hi))
