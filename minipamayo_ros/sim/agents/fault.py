"""Who is at fault in a collision between the ego and a road user (NAVSIM-like rules).

Not the ego's fault:

* ``ego_standing``: the ego stood still (< 0.1 m/s): it was hit;
* ``rear_ended``: the other came from behind (its centre behind the ego's rear axle line, closing
  faster than the ego drives);
* ``other_out_of_lane``: a vehicle out of its own lane (an oncoming car that drifted over the
  centre line, a car pulling out) hit the ego while the ego was inside its lane;
* ``cut_in``: a vehicle cut into our lane less than ``CUT_IN_GRACE`` s before the contact.

Otherwise (a pedestrian, a parked car, the lead vehicle, cross traffic after a red light, ...) it
is (``ego``).
"""

from __future__ import annotations

import math

from minipamayo_ros.sim.agents.kinematics import AgentKind, AgentState

CUT_IN_GRACE = 1.0      # [s]
STANDSTILL_MPS = 0.1    # [m/s]


def collision_fault(ego: AgentState, ego_rear_axle: tuple[float, float], ego_in_lane: bool,
                    other: AgentState, time: float) -> tuple[bool, str]:
    """(ego at fault, reason) of a contact between ``ego`` and ``other`` at ``time`` [s]."""
    if ego.speed < STANDSTILL_MPS:
        return False, "ego_standing"
    c, s = math.cos(ego.yaw), math.sin(ego.yaw)
    along = (other.x - ego_rear_axle[0]) * c + (other.y - ego_rear_axle[1]) * s
    closing = other.speed * math.cos(other.yaw - ego.yaw) - ego.speed
    if along < 0.0 and closing > 0.0 and other.kind == AgentKind.VEHICLE:
        return False, "rear_ended"
    if other.kind == AgentKind.VEHICLE and not other.in_own_lane and ego_in_lane:
        return False, "other_out_of_lane"
    if other.cut_in_time is not None and time - other.cut_in_time < CUT_IN_GRACE:
        return False, "cut_in"
    return True, "ego"
