"""A short, time-ordered history of odometry poses, interpolated at arbitrary stamps.

Used by the follower (where was the car when the trajectory's image was taken?) and the policy
(speed / yaw rate at the image stamp). Stamps are float seconds on the node's clock (sim time
when ``use_sim_time`` is set).
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

import numpy as np

from minipamayo_ros.geometry import Pose2D, wrap_angle


@dataclass(frozen=True)
class OdometrySample:
    """One odometry reading: pose in ``odom`` [m, rad] and body-frame twist [m/s, rad/s]."""

    stamp: float
    pose: Pose2D
    speed: float = 0.0
    yaw_rate: float = 0.0


class PoseHistory:
    """Bounded buffer of odometry samples with linear (SE(2)) interpolation.

    Samples must arrive in stamp order; an out-of-order or duplicate sample is rejected
    (``add`` returns False) rather than silently corrupting the interpolation.
    """

    def __init__(self, max_age: float = 3.0, max_samples: int = 1000) -> None:
        if max_age <= 0.0:
            raise ValueError(f"max_age must be > 0 s, got {max_age}")
        self.max_age = max_age
        self._samples: deque[OdometrySample] = deque(maxlen=max_samples)

    def __len__(self) -> int:
        return len(self._samples)

    def clear(self) -> None:
        self._samples.clear()

    @property
    def latest(self) -> OdometrySample | None:
        return self._samples[-1] if self._samples else None

    @property
    def oldest(self) -> OdometrySample | None:
        return self._samples[0] if self._samples else None

    def add(self, sample: OdometrySample) -> bool:
        """Append a sample; returns False (and keeps the buffer unchanged) if it is not newer."""
        if self._samples and sample.stamp <= self._samples[-1].stamp:
            return False
        if not np.all(np.isfinite([sample.stamp, sample.pose.x, sample.pose.y, sample.pose.yaw])):
            return False
        self._samples.append(sample)
        while self._samples and sample.stamp - self._samples[0].stamp > self.max_age:
            self._samples.popleft()
        return True

    def interpolate(self, stamp: float, max_extrapolation: float = 0.0) -> OdometrySample | None:
        """The sample at ``stamp``, linearly interpolated between its neighbours.

        Outside the buffered interval the nearest sample is extrapolated at constant speed and
        yaw rate by up to ``max_extrapolation`` seconds; beyond that returns None.
        """
        if not self._samples:
            return None
        first, last = self._samples[0], self._samples[-1]
        if stamp >= last.stamp:
            return _extrapolate(last, stamp) if stamp - last.stamp <= max_extrapolation else None
        if stamp <= first.stamp:
            return _extrapolate(first, stamp) if first.stamp - stamp <= max_extrapolation else None
        # binary search on the deque itself: no array of the whole history per call (the follower
        # interpolates twice per tick over ~150 samples)
        i = bisect.bisect_left(self._samples, stamp, key=_stamp)  # stamps[i-1] < stamp <= stamps[i]
        a, b = self._samples[i - 1], self._samples[i]
        w = (stamp - a.stamp) / (b.stamp - a.stamp)
        yaw = a.pose.yaw + w * float(wrap_angle(b.pose.yaw - a.pose.yaw))
        return OdometrySample(
            stamp,
            Pose2D(
                a.pose.x + w * (b.pose.x - a.pose.x),
                a.pose.y + w * (b.pose.y - a.pose.y),
                float(wrap_angle(yaw)),
            ),
            a.speed + w * (b.speed - a.speed),
            a.yaw_rate + w * (b.yaw_rate - a.yaw_rate),
        )


def _stamp(s: OdometrySample) -> float:
    return s.stamp


def _extrapolate(s: OdometrySample, stamp: float) -> OdometrySample:
    """Constant-twist (arc) motion of ``s`` to ``stamp``."""
    dt = stamp - s.stamp
    dyaw = s.yaw_rate * dt
    # exact arc for constant speed and yaw rate, expressed in the sample's body frame
    if abs(dyaw) > 1e-9:
        radius = s.speed / s.yaw_rate
        local = Pose2D(radius * np.sin(dyaw), radius * (1.0 - np.cos(dyaw)), dyaw)
    else:
        local = Pose2D(s.speed * dt, 0.0, 0.0)
    return OdometrySample(stamp, s.pose.compose(local), s.speed, s.yaw_rate)
