"""Driving events the text node explains. Values equal the constants in ``msg/Explanation.msg``.

:class:`Event` is the message contract and the model's event head (8 classes); it stays coarse.
:class:`Reason` says *what* the car reacts to (the expert's label in the traffic world: lead
vehicle braking, pedestrian crossing, red light, ...); each reason maps to one coarse event
(:data:`REASON_EVENT`). New reasons are appended (values are stored in datasets).
"""

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


class Reason(IntEnum):
    """What the expert reacts to (finer than :class:`Event`; append only)."""

    NONE = 0
    CURVE = 1
    BRAKE = 2             # braking without a named cause (e.g. to the cruise speed)
    STOP_LINE = 3
    OBSTACLE = 4
    LEAD_VEHICLE = 5      # following a vehicle ahead at a safe gap
    LEAD_BRAKING = 6      # braking because the vehicle ahead slows / stops
    PEDESTRIAN = 7        # yielding to a pedestrian crossing ahead
    RED_LIGHT = 8         # stopping / waiting at a red light
    AMBER_LIGHT = 9       # stopping for an amber light
    GREEN_LIGHT = 10      # proceeding on green (after waiting, or through an intersection)
    CUT_IN = 11           # braking for a vehicle cutting in
    PARKED_VEHICLE = 12   # passing a parked vehicle with an offset, or stopped behind it
    ONCOMING = 13         # moving right for an oncoming vehicle over the centre line
    TURN = 14             # turning left / right at an intersection


#: the coarse event (message constant, model head) of each reason
REASON_EVENT: dict[Reason, Event] = {
    Reason.NONE: Event.NONE, Reason.CURVE: Event.CURVE, Reason.BRAKE: Event.BRAKE,
    Reason.STOP_LINE: Event.STOP, Reason.OBSTACLE: Event.OBSTACLE, Reason.LEAD_VEHICLE: Event.NONE,
    Reason.LEAD_BRAKING: Event.BRAKE, Reason.PEDESTRIAN: Event.STOP, Reason.RED_LIGHT: Event.STOP,
    Reason.AMBER_LIGHT: Event.STOP, Reason.GREEN_LIGHT: Event.NONE, Reason.CUT_IN: Event.BRAKE,
    Reason.PARKED_VEHICLE: Event.OBSTACLE, Reason.ONCOMING: Event.NONE, Reason.TURN: Event.CURVE,
}

#: the reason a classic label (event only, e.g. an older dataset) stands for
EVENT_REASON: dict[Event, Reason] = {
    Event.NONE: Reason.NONE, Event.CURVE: Reason.CURVE, Event.BRAKE: Reason.BRAKE,
    Event.STOP: Reason.STOP_LINE, Event.OBSTACLE: Reason.OBSTACLE,
}
