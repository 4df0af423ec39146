"""The scene at one instant, as scorers, the simulator node and tools read it (immutable, ROS-free).

:meth:`minipamayo_ros.sim.world.World.scene_state` builds one per call. World / ``odom`` frame,
SI units. Classic worlds list their static obstacles as agents of kind ``OBSTACLE`` and their
stop lines in ``stop_lines``; traffic worlds add vehicles, pedestrians, lights and crosswalks.
"""

from __future__ import annotations

from dataclasses import dataclass

from minipamayo_ros.sim.agents.kinematics import AgentKind, AgentState, Role
from minipamayo_ros.sim.agents.objects import LightState

__all__ = ["AgentKind", "AgentState", "CrosswalkView", "LightView", "Role", "SceneState"]


@dataclass(frozen=True)
class LightView:
    """Our approach's signal at one intersection."""

    id: int                  # intersection id
    state: LightState
    time_to_change: float    # [s] until ``state`` changes
    stop_line_s: float       # [m] route arc length of its stop line
    x: float                 # [m] world position of the stop line's centre (ego lane)
    y: float
    heading: float           # [rad] our approach's heading (the stop line is across it)
    cross_state: LightState  # the cross street's signal


@dataclass(frozen=True)
class CrosswalkView:
    id: int
    s: float                 # [m] route arc length of its centre line
    width: float             # [m] along the road
    x: float                 # [m] world position of its centre on the ego-lane centre line
    y: float


@dataclass(frozen=True)
class SceneState:
    """Ground truth at ``time`` [s] (episode time)."""

    time: float
    scenario: str                         # scenario type name ("classic", "pedestrian_crossing", ...)
    lane_width: float                     # [m]
    ego: AgentState                       # ego footprint (kind VEHICLE, role EGO), centre of the box
    agents: tuple[AgentState, ...]        # active road users and static obstacles
    lights: tuple[LightView, ...] = ()
    stop_lines: tuple[float, ...] = ()    # [m] route s of plain stop lines (with a stop sign)
    crosswalks: tuple[CrosswalkView, ...] = ()

    def agent(self, agent_id: int) -> AgentState | None:
        return next((a for a in self.agents if a.id == agent_id), None)
