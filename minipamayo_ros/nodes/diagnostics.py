"""``diagnostic_msgs`` filling for the safety core's reports (shared by the policy and follower)."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from minipamayo_ros.safety.input_monitor import InputMonitor


def status_msg(name: str, level: int, message: str, values: dict[str, str],
               hardware_id: str = "") -> DiagnosticStatus:
    status = DiagnosticStatus(level=bytes([level]), name=name, message=message, hardware_id=hardware_id)
    status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    return status


def input_status(node_name: str, monitor: InputMonitor, now: float) -> DiagnosticStatus:
    """One status per input topic, named ``<node>: input <topic>`` (watchdog state + rejections)."""
    rep = monitor.report(now)
    return status_msg(f"{node_name}: input {monitor.topic}", rep.level, rep.message, rep.values)
