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

    stamp: float                                  # [s] image stamp, ROS clock
    points: NDArray[np.float64]                   # (N, 2) [m]
    speeds: NDArray[np.float64]                   # (N,) [m/s]
    dt: float = WAYPOINT_DT                       # [s]
    uncertainty: float = 0.0                      # [m] model's mean waypoint error estimate
    sequence: int = 0                             # +1 per plan within one producer instance
    model_id: str = ""
    frame_id: str = "base_link"
    inference_latency_ms: float = 0.0
    end_to_end_latency_ms: float = 0.0
    producer: str = ""                            # fully qualified name of the node that made it
    producer_instance: int = 0                    # random per start of that node (0 = not set)
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def horizon(self) -> float:
        return len(self.points) * self.dt
