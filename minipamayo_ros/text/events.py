"""Event detection on the policy's trajectory stream, with hysteresis and a minimum interval per kind.

Each kind is a scalar feature of one planned trajectory compared with an *on* threshold and a lower
*off* threshold (hysteresis): the kind becomes active when the feature rises to ``on`` and inactive
only when it falls below ``off``, so a feature hovering around one threshold fires once, not at
every frame. An event fires on the inactive -> active transition, and only if the same kind has not
fired within ``min_interval`` seconds (stamp time) — a curve that flickers in and out of view does
not flood the text node.

Kinds (``minipamayo_ros.events.Event``; feature, unit):

* ``CURVE``: the largest curvature along the plan, heading change between consecutive segments
  per metre [1/m] (the far end of the 2 s plan bends as soon as a curve enters it; the chord to
  the last waypoint reacts ~1 s later). 0 when the path is shorter than ``min_path_length``: at a
  crawl a few centimetres of lateral noise would read as a sharp turn;
* ``BRAKE``: planned deceleration over the horizon, (v_first - v_last) / horizon [m/s²];
* ``STOP``: the plan comes to a standstill within the horizon (obstacle or stop line ahead, or
  standing): feature = ``stop_speed`` - last planned speed [m/s], active when >= 0. A trajectory
  alone cannot say *why* the plan stops, so ``OBSTACLE`` is never detected here;
* ``UNCERTAIN``: the model's own uncertainty estimate [m].

``situation()`` is the highest-priority active kind (STOP > CURVE > BRAKE, as the simulator's
expert ranks them; UNCERTAIN is not a situation): the text model is conditioned on it, because the
model was trained on the expert's situation labels (see ``docs/text.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from minipamayo_ros.events import Event
from minipamayo_ros.trajectory import PlannedTrajectory

#: situation priority, highest first (the simulator expert's ranking)
SITUATION_PRIORITY = (Event.STOP, Event.CURVE, Event.BRAKE)
DETECTED = (Event.CURVE, Event.BRAKE, Event.STOP, Event.UNCERTAIN)


@dataclass(frozen=True)
class Threshold:
    """Hysteresis band of one kind: active at ``feature >= on``, inactive again at ``feature < off``."""

    on: float
    off: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.on) and math.isfinite(self.off)) or self.off > self.on:
            raise ValueError(f"need finite thresholds with off <= on, got on={self.on}, off={self.off}")


@dataclass(frozen=True)
class DetectorSettings:
    """Thresholds per kind and the minimum interval between two events of one kind [s]."""

    thresholds: dict[Event, Threshold]
    min_interval: float = 3.0
    min_path_length: float = 2.0      # [m] shorter plans have no meaningful curvature
    stop_speed: float = 0.5           # [m/s] a last planned speed below this is a standstill

    def __post_init__(self) -> None:
        unknown = set(self.thresholds) - set(DETECTED)
        if unknown:
            raise ValueError(f"no detector for event kinds {sorted(unknown)}")
        if not self.min_interval >= 0.0:
            raise ValueError(f"min_interval must be >= 0 s, got {self.min_interval}")


@dataclass(frozen=True)
class DetectedEvent:
    """One event: its kind and the trajectory (stamp, sequence) that triggered it."""

    kind: Event
    stamp: float           # [s] stamp of the triggering trajectory (its image stamp)
    sequence: int          # Trajectory.sequence of the triggering trajectory
    feature: float         # the feature value that crossed ``on`` (unit of the kind)
    situation: Event       # what the vehicle is doing (conditions the caption)


def features(traj: PlannedTrajectory, min_path_length: float = 2.0, stop_speed: float = 0.5
             ) -> dict[Event, float]:
    """The detector's features of one trajectory (see module docstring for units)."""
    p = np.asarray(traj.points, dtype=np.float64)
    v = np.asarray(traj.speeds, dtype=np.float64)
    seg = np.diff(np.vstack(([0.0, 0.0], p)), axis=0)
    lengths = np.hypot(seg[:, 0], seg[:, 1])
    curvature = 0.0
    if float(lengths.sum()) >= min_path_length and len(seg) >= 2:
        heading = np.unwrap(np.arctan2(seg[:, 1], seg[:, 0]))
        ds = np.maximum(0.5 * (lengths[1:] + lengths[:-1]), 1e-3)
        curvature = float(np.max(np.abs(np.diff(heading)) / ds))
    horizon = max(traj.horizon, 1e-6)
    return {
        Event.CURVE: curvature,
        Event.BRAKE: (float(v[0]) - float(v[-1])) / horizon,
        Event.STOP: stop_speed - float(v[-1]),
        Event.UNCERTAIN: float(traj.uncertainty),
    }


@dataclass
class _KindState:
    active: bool = False
    last_fired: float = -math.inf
    fired: int = 0
    suppressed: int = 0   # onsets within min_interval of the previous event of this kind


@dataclass
class EventDetector:
    """Feed trajectories in stamp order with :meth:`update`; it returns the events they trigger."""

    settings: DetectorSettings
    _state: dict[Event, _KindState] = field(default_factory=dict)
    _last_stamp: float = -math.inf

    def __post_init__(self) -> None:
        self._state = {k: _KindState() for k in self.settings.thresholds}

    def update(self, traj: PlannedTrajectory) -> list[DetectedEvent]:
        """Events triggered by ``traj`` (usually none). Trajectories not newer than the previous
        one are ignored (a replayed or reordered message must not fire an event twice)."""
        if not traj.stamp > self._last_stamp:
            return []
        self._last_stamp = traj.stamp
        s = self.settings
        values = features(traj, s.min_path_length, s.stop_speed)
        onsets: list[tuple[Event, float]] = []
        for kind, th in s.thresholds.items():
            st, value = self._state[kind], values[kind]
            if not math.isfinite(value):
                continue
            if st.active:
                st.active = value >= th.off
                continue
            if value >= th.on:
                st.active = True
                if traj.stamp - st.last_fired >= s.min_interval:
                    onsets.append((kind, value))
                else:
                    st.suppressed += 1
        situation = self.situation()
        events = []
        for kind, value in onsets:
            st = self._state[kind]
            st.last_fired = traj.stamp
            st.fired += 1
            events.append(DetectedEvent(kind, traj.stamp, int(traj.sequence), value, situation))
        return events

    def situation(self) -> Event:
        """Highest-priority active kind (STOP > CURVE > BRAKE), else ``Event.NONE``."""
        for kind in SITUATION_PRIORITY:
            st = self._state.get(kind)
            if st is not None and st.active:
                return kind
        return Event.NONE

    def active(self, kind: Event) -> bool:
        st = self._state.get(kind)
        return bool(st and st.active)

    def counts(self) -> dict[str, int]:
        """Events fired and onsets suppressed by ``min_interval``, per kind (for /diagnostics)."""
        out: dict[str, int] = {}
        for kind, st in self._state.items():
            out[f"events_{kind.name.lower()}"] = st.fired
            out[f"suppressed_{kind.name.lower()}"] = st.suppressed
        return out

    def reset(self) -> None:
        """Forget all state (e.g. after a clock jump or a simulator reset)."""
        self._state = {k: _KindState() for k in self.settings.thresholds}
        self._last_stamp = -math.inf
