"""The simulator's ground-truth scene as ``visualization_msgs/MarkerArray`` (RViz / Foxglove show it
without configuration). Never an input of the policy.

One array per camera frame, frame ``odom``: a ``DELETEALL`` first (agents come and go), then a
``CUBE`` per road user / obstacle (namespace = its role, id = its agent id, pose = footprint centre
at half height, scale = length x width x height), a ``SPHERE`` per traffic light (namespace
``traffic_lights``, id = intersection id, colour = our approach's state, ``text`` = the state name
and the cross street's), a ``LINE_LIST`` of the stop lines and a flat ``CUBE`` per crosswalk.
"""

from __future__ import annotations

import math

from geometry_msgs.msg import Point
from visualization_msgs.msg import Marker, MarkerArray

from minipamayo_ros.geometry import quaternion_from_yaw
from minipamayo_ros.nodes.conversions import sec_to_time
from minipamayo_ros.sim.agents.kinematics import AgentKind
from minipamayo_ros.sim.agents.objects import LightState
from minipamayo_ros.sim.scene import SceneState

#: RGBA per agent kind
KIND_COLORS = {AgentKind.VEHICLE: (0.2, 0.45, 0.95, 0.9), AgentKind.PEDESTRIAN: (1.0, 0.55, 0.1, 0.95),
               AgentKind.OBSTACLE: (0.6, 0.35, 0.15, 0.9)}
LIGHT_COLORS = {LightState.GREEN: (0.1, 0.9, 0.3, 1.0), LightState.AMBER: (1.0, 0.7, 0.0, 1.0),
                LightState.RED: (1.0, 0.1, 0.1, 1.0)}


def _marker(kind: int, ns: str, ident: int, frame: str, stamp: float) -> Marker:
    m = Marker()
    m.header.frame_id = frame
    m.header.stamp = sec_to_time(stamp)
    m.ns, m.id, m.type, m.action = ns, int(ident), kind, Marker.ADD
    m.pose.orientation.w = 1.0
    return m


def _color(m: Marker, rgba: tuple[float, float, float, float]) -> None:
    m.color.r, m.color.g, m.color.b, m.color.a = (float(c) for c in rgba)


def scene_markers(scene: SceneState, frame: str, stamp: float) -> MarkerArray:
    """The scene at ``stamp`` [s] (sim time) as markers in ``frame`` (the world / odom frame)."""
    out = MarkerArray()
    clear = Marker()
    clear.header.frame_id = frame
    clear.header.stamp = sec_to_time(stamp)
    clear.action = Marker.DELETEALL
    out.markers.append(clear)
    for a in scene.agents:
        m = _marker(Marker.CUBE, a.role.name.lower(), a.id, frame, stamp)
        m.pose.position.x, m.pose.position.y, m.pose.position.z = float(a.x), float(a.y), a.height / 2
        q = quaternion_from_yaw(a.yaw)
        m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z, m.pose.orientation.w = q
        m.scale.x, m.scale.y, m.scale.z = float(a.length), float(a.width), float(a.height)
        _color(m, KIND_COLORS.get(a.kind, (0.7, 0.7, 0.7, 0.9)))
        m.text = f"{a.role.name.lower()} {a.id}: {a.speed:.1f} m/s"
        out.markers.append(m)
    for lv in scene.lights:
        m = _marker(Marker.SPHERE, "traffic_lights", lv.id, frame, stamp)
        m.pose.position.x, m.pose.position.y, m.pose.position.z = float(lv.x), float(lv.y), 3.0
        m.scale.x = m.scale.y = m.scale.z = 0.8
        _color(m, LIGHT_COLORS[lv.state])
        m.text = f"{lv.state.name.lower()} ({lv.time_to_change:.1f} s), cross {lv.cross_state.name.lower()}"
        out.markers.append(m)
    half = scene.lane_width / 2
    lines = _marker(Marker.LINE_LIST, "stop_lines", 0, frame, stamp)
    lines.scale.x = 0.4
    _color(lines, (1.0, 1.0, 1.0, 1.0))
    for x, y, h in [(lv.x, lv.y, lv.heading) for lv in scene.lights]:
        for side in (-1.0, 1.0):
            lines.points.append(Point(x=x - math.sin(h) * side * half, y=y + math.cos(h) * side * half,
                                      z=0.05))
    if lines.points:
        out.markers.append(lines)
    for cw in scene.crosswalks:
        m = _marker(Marker.CUBE, "crosswalks", cw.id, frame, stamp)
        m.pose.position.x, m.pose.position.y, m.pose.position.z = float(cw.x), float(cw.y), 0.02
        q = quaternion_from_yaw(cw.heading)
        m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z, m.pose.orientation.w = q
        m.scale.x, m.scale.y, m.scale.z = float(cw.width), 2.0 * scene.lane_width, 0.04
        _color(m, (1.0, 1.0, 1.0, 0.5))
        out.markers.append(m)
    return out
