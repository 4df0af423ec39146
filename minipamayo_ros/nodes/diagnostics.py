"""``diagnostic_msgs`` filling for the safety core's reports (shared by the policy and follower)."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from rclpy.node import Node

from minipamayo_ros.safety.input_monitor import InputMonitor


def diagnostic_name(node: Node) -> str:
    """The node's name as its /diagnostics statuses start: ``follower``, or ``car7/follower`` in a
    namespace (``/diagnostics`` is global: two cars on one domain must be told apart)."""
    return node.get_fully_qualified_name().lstrip("/")


def status_msg(name: str, level: int, message: str, values: dict[str, str],
               hardware_id: str = "") -> DiagnosticStatus:
    status = DiagnosticStatus(level=bytes([level]), name=name, message=message, hardware_id=hardware_id)
    status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    return status


def input_status(node_name: str, monitor: InputMonitor, now: float) -> DiagnosticStatus:
    """One status per input topic, named ``<node>: input <topic>`` (watchdog state + rejections)."""
    rep = monitor.report(now)
    return status_msg(f"{node_name}: input {monitor.topic}", rep.level, rep.message, rep.values)
