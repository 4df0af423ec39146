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
    x: float                 # [m] world position of its centre (middle of the road)
    y: float
    heading: float = 0.0     # [rad] road heading there


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


# ---------------------------------------------------------------------------------------------
# What the expert reads from the traffic (privileged, route coordinates; built by sim.traffic)


@dataclass(frozen=True)
class StopTarget:
    """The ego's front bumper must stop before route ``s`` [m] (a red light's stop line, the
    line a pedestrian crosses, a blocking parked car, an occupied intersection)."""

    s: float
    reason: int              # events.Reason value
    standing_ok: bool = True  # False: a target that may vanish any moment (caption "waiting")


@dataclass(frozen=True)
class LeadView:
    """The nearest vehicle ahead in the ego's path (route s of its rear [m], speed, accel)."""

    agent_id: int
    rear_s: float
    speed: float
    accel: float
    cut_in_time: float | None = None


@dataclass(frozen=True)
class Bump:
    """A lateral offset of the ego's path [m, left +]: ramps in over [s0, s1], holds to s2, ramps
    out to s3 (smoothstep ramps: continuous slope)."""

    s0: float
    s1: float
    s2: float
    s3: float
    amplitude: float
    reason: int = 0          # events.Reason value


@dataclass(frozen=True)
class TrafficView:
    """Everything of the traffic the expert reacts to at one instant."""

    stops: tuple[StopTarget, ...] = ()
    lead: LeadView | None = None
    bumps: tuple[Bump, ...] = ()
    green_light_s: float | None = None   # [m] stop line of a green light just ahead / just passed
    turn: tuple[float, int] | None = None  # (route s of the next turn's start, +1 left / -1 right)
    speed_cap: float | None = None       # [m/s] caution (a vehicle drifting into our lane)
    time: float = 0.0                    # [s] episode time of the view
