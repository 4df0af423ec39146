"""Driving events the text node explains. Values equal the constants in ``msg/Explanation.msg``."""

from __future__ import annotations

from enum import IntEnum


class Event(IntEnum):
    NONE = 0
    CURVE = 1
    BRAKE = 2
    STOP = 3
    OBSTACLE = 4
    UNCERTAIN = 5
    REQUESTED = 6
