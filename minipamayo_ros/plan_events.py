"""What one planned trajectory does, as scalar features per event kind: one code path for the text
node's event detector (``text.events``, with hysteresis) and the text model's training condition
(:func:`situation` of the expert's plan, ``model.train``), so the caption model is trained on the
situations the node will condition it on.

Features (``events.Event``; unit):

* ``CURVE``: the largest curvature along the plan, heading change between consecutive segments
  per metre [1/m] (0 for plans shorter than ``min_path_length``: at a crawl a few centimetres of
  lateral noise would read as a sharp turn);
* ``BRAKE``: planned deceleration over the horizon, (v_first - v_last) / horizon [m/s²];
* ``STOP``: ``stop_speed`` - last planned speed [m/s] (a standstill within the horizon when >= 0);
* ``GO``: last - first planned speed while the first is below ``stop_speed`` [m/s], else 0: the
  plan moves off from a standstill (a green light, after a stop, a pedestrian has crossed);
* ``OBSTACLE``: the plan swerves (passing a parked vehicle or an obstacle): the lateral offset of
  the plan's end that an arc of constant curvature with the same end heading does not explain,
  |y_end - L sin(theta_end) / 2| [m] (L: path length), 0 on plans that bend more than
  :data:`SWERVE_MAX_CURVATURE` (a curve of the road: a curve entry also leaves such an offset,
  but with far more curvature than the gentle shift of passing). Calibrated on the expert's plans
  of validation seeds: >= 0.15 m in half of the frames while passing a parked vehicle (every
  passing has some), in 1 % of straight driving and 5-8 % of frames in gentle curves;
* ``UNCERTAIN``: the model's own uncertainty estimate [m].

A trajectory says *what* the car does, never *why*: whether a stop is for a red light, a
pedestrian or a stop line is the context vector's to say (the text model's input).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike

from minipamayo_ros.events import Event

#: kinds computed from a trajectory
DETECTED = (Event.CURVE, Event.BRAKE, Event.STOP, Event.GO, Event.OBSTACLE, Event.UNCERTAIN)
#: situation priority, highest first: what a caption describes when several kinds are active
SITUATION_PRIORITY = (Event.STOP, Event.GO, Event.OBSTACLE, Event.CURVE, Event.BRAKE)
#: ``on`` thresholds of ``config/text.yaml`` (a test checks they agree): the training condition
DEFAULT_ON: dict[Event, float] = {Event.CURVE: 0.03, Event.BRAKE: 1.0, Event.STOP: 0.0, Event.GO: 1.0,
                                  Event.OBSTACLE: 0.15, Event.UNCERTAIN: 0.15}
MIN_PATH_LENGTH = 2.0   # [m]
STOP_SPEED = 0.5        # [m/s]
#: [1/m] plans bending more than this are curves, never swerves
SWERVE_MAX_CURVATURE = 0.03


def features(points: ArrayLike, speeds: ArrayLike, horizon: float, uncertainty: float = 0.0,
             min_path_length: float = MIN_PATH_LENGTH, stop_speed: float = STOP_SPEED
             ) -> dict[Event, float]:
    """The features of one plan: ``points`` (N, 2) [m] in base_link, ``speeds`` (N,) [m/s],
    ``horizon`` [s] (module docstring for each kind)."""
    p = np.asarray(points, dtype=np.float64)
    v = np.asarray(speeds, dtype=np.float64)
    seg = np.diff(np.vstack(([0.0, 0.0], p)), axis=0)
    lengths = np.hypot(seg[:, 0], seg[:, 1])
    curve = swerve = 0.0
    length = float(lengths.sum())
    if length >= min_path_length and len(seg) >= 2:
        heading = np.unwrap(np.arctan2(seg[:, 1], seg[:, 0]))
        ds = np.maximum(0.5 * (lengths[1:] + lengths[:-1]), 1e-3)
        curve = float(np.max(np.abs(np.diff(heading) / ds)))
        if curve < SWERVE_MAX_CURVATURE:
            swerve = abs(float(p[-1, 1]) - 0.5 * length * float(np.sin(heading[-1])))
    horizon = max(horizon, 1e-6)
    v_first, v_last = float(v[0]), float(v[-1])
    return {
        Event.CURVE: curve,
        Event.BRAKE: (v_first - v_last) / horizon,
        Event.STOP: stop_speed - v_last,
        Event.GO: v_last - v_first if v_first < stop_speed else 0.0,
        Event.OBSTACLE: swerve,
        Event.UNCERTAIN: float(uncertainty),
    }


def situation(values: Mapping[Event, float], on: Mapping[Event, float] = DEFAULT_ON) -> Event:
    """The highest-priority kind whose feature reaches its ``on`` threshold, else ``Event.NONE``
    (stateless: the detector adds hysteresis on top)."""
    for kind in SITUATION_PRIORITY:
        value = values.get(kind, -math.inf)
        if kind in on and math.isfinite(value) and value >= on[kind]:
            return kind
    return Event.NONE
