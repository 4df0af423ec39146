"""A recorded drive as live sensor messages, for benchmarks that feed the stack without a simulator.

Camera frames loop over the recording; odometry is dead-reckoned from the recorded (speed [m/s],
yaw rate [rad/s]) so that the pose moves consistently with the twist. Both are stamped with
``now()`` [s], the publishing node's ROS clock, as a camera driver would stamp them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from minipamayo_ros.nodes.conversions import sec_to_time


class DriveFeed:
    """Messages of one recorded drive: :meth:`odometry` at the odometry rate, :meth:`image` at the
    camera rate (each call returns the next one)."""

    def __init__(self, frames: Sequence[bytes], size: tuple[int, int], odom: np.ndarray,
                 now: Callable[[], float]) -> None:
        self._frames, self._odom, self._now = frames, odom, now
        self._h, self._w = int(size[0]), int(size[1])
        self._frame = self._sample = 0
        self._x = self._y = self._yaw = 0.0
        self._t = now()

    def odometry(self) -> Any:
        """The next odometry sample (nav_msgs/Odometry, odom -> base_link)."""
        from nav_msgs.msg import Odometry

        _, v, r = self._odom[self._sample % len(self._odom)]
        self._sample += 1
        t = self._now()
        dt = min(t - self._t, 0.1)  # [s] a stalled publisher does not teleport the pose
        self._t = t
        self._yaw += r * dt
        self._x += v * dt * np.cos(self._yaw)
        self._y += v * dt * np.sin(self._yaw)
        msg = Odometry()
        msg.header.stamp = sec_to_time(t)
        msg.header.frame_id, msg.child_frame_id = "odom", "base_link"
        msg.pose.pose.position.x, msg.pose.pose.position.y = float(self._x), float(self._y)
        msg.pose.pose.orientation.z = math.sin(self._yaw / 2)
        msg.pose.pose.orientation.w = math.cos(self._yaw / 2)
        msg.twist.twist.linear.x, msg.twist.twist.angular.z = float(v), float(r)
        return msg

    def image(self) -> Any:
        """The next camera frame (sensor_msgs/Image rgb8, frame ``camera``)."""
        from sensor_msgs.msg import Image

        msg = Image(height=self._h, width=self._w, encoding="rgb8", step=3 * self._w)
        msg.data = self._frames[self._frame % len(self._frames)]
        self._frame += 1
        msg.header.stamp = sec_to_time(self._now())
        msg.header.frame_id = "camera"
        return msg
