"""The planned trajectory as the core sees it (ROS-free mirror of ``msg/Trajectory.msg``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

#: Standard output of the policy (design notes): 20 waypoints, 0.1 s apart, 2.0 s horizon.
NUM_WAYPOINTS = 20
WAYPOINT_DT = 0.1
HORIZON = NUM_WAYPOINTS * WAYPOINT_DT


@dataclass(frozen=True)
class PlannedTrajectory:
    """Waypoints in the body frame at ``stamp`` (the source image's capture time).

    ``points[i]`` ([m], x forward / y left) is where the vehicle should be at
    ``stamp + (i + 1) * dt``; ``speeds[i]`` [m/s] is the planned speed there.
    """

    stamp: float                                  # [s] image stamp, node clock
    points: NDArray[np.float64]                   # (N, 2) [m]
    speeds: NDArray[np.float64]                   # (N,) [m/s]
    dt: float = WAYPOINT_DT                       # [s]
    uncertainty: float = 0.0                      # [m] model's mean waypoint error estimate
    sequence: int = 0
    model_id: str = ""
    frame_id: str = "base_link"
    inference_latency_ms: float = 0.0
    end_to_end_latency_ms: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def horizon(self) -> float:
        return len(self.points) * self.dt

    def validation_error(self) -> str | None:
        """Why this trajectory must not be followed, or None if it is usable.

        Rejected: mismatched lengths, fewer than 2 points, non-finite values, negative speeds,
        a non-positive dt, or a path whose end is behind the vehicle (forward driving only).
        """
        p, v = np.asarray(self.points), np.asarray(self.speeds)
        if p.ndim != 2 or p.shape[1] != 2:
            return f"points must have shape (N, 2), got {p.shape}"
        if len(p) < 2:
            return f"needs at least 2 waypoints, got {len(p)}"
        if v.shape != (len(p),):
            return f"speeds length {v.shape} does not match {len(p)} waypoints"
        if not (np.all(np.isfinite(p)) and np.all(np.isfinite(v)) and np.isfinite(self.dt)):
            return "contains NaN or inf"
        if self.dt <= 0.0:
            return f"dt must be > 0 s, got {self.dt}"
        if np.any(v < 0.0):
            return "negative speed (forward driving only)"
        if p[-1, 0] < 0.0:
            return f"path points backwards (last waypoint x = {p[-1, 0]:.2f} m)"
        return None
