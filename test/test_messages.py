"""The message contract: fields, constants and serialization round-trips (no DDS needed)."""

from __future__ import annotations

import re
from enum import IntEnum
from pathlib import Path

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message

from minipamayo_ros.control.follower import ControlStatus
from minipamayo_ros.events import Event
from minipamayo_ros.msg import ControlCommand, Explanation, PolicyContext, Trajectory

MSG_DIR = Path(__file__).resolve().parents[1] / "msg"


def _trajectory() -> Trajectory:
    msg = Trajectory()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 12, 345_000_000
    msg.header.frame_id = "base_link"
    msg.sequence = 7
    msg.dt, msg.horizon = 0.1, 2.0
    t = np.arange(1, 21, dtype=np.float32) * 0.1
    msg.x = (5.0 * t).tolist()
    msg.y = (0.2 * t**2).tolist()
    msg.speed = np.full(20, 5.0, np.float32).tolist()
    msg.uncertainty = 0.25
    msg.model_id = "tiny@0123456789ab"
    msg.inference_latency_ms, msg.end_to_end_latency_ms = 12.5, 20.0
    return msg


def _explanation() -> Explanation:
    msg = Explanation()
    msg.header.frame_id = "base_link"
    msg.trajectory_sequence = 7
    msg.event = Explanation.CURVE
    msg.text = "slowing for sharp left curve"
    msg.token_ids = [4, 8, 15, 16, 23]
    msg.token_count = 5
    msg.generation_latency_ms = 40.0
    msg.truncated = False
    return msg


def _control() -> ControlCommand:
    msg = ControlCommand()
    msg.status = ControlCommand.STALE_TRAJECTORY_STOP
    msg.steering_angle, msg.curvature, msg.speed, msg.acceleration = 0.1, 0.037, 4.0, -2.0
    msg.yaw_rate = 0.148
    msg.trajectory_stamp.sec = 12
    msg.trajectory_sequence = 7
    msg.lookahead_point.x, msg.lookahead_point.y = 6.0, 0.5
    msg.lookahead_distance = 6.02
    return msg


def _context() -> PolicyContext:
    msg = PolicyContext()
    msg.trajectory_sequence = 7
    msg.context = np.linspace(-1, 1, 64, dtype=np.float32).tolist()
    msg.model_id = "tiny@0123456789ab"
    return msg


@pytest.mark.parametrize("factory", [_trajectory, _explanation, _control, _context])
def test_round_trip_through_cdr(factory) -> None:
    """float32 fields lose precision once; after that the round trip is exact."""
    msg = factory()
    back = deserialize_message(serialize_message(msg), type(msg))
    assert deserialize_message(serialize_message(back), type(msg)) == back
    for name in msg.get_fields_and_field_types():
        a, b = getattr(msg, name), getattr(back, name)
        if isinstance(a, float):
            assert b == pytest.approx(a, rel=1e-6), name
        elif hasattr(a, "__len__") and not isinstance(a, str):
            np.testing.assert_allclose(np.asarray(b, float), np.asarray(a, float), rtol=1e-6)
        else:
            assert a == b, name


def _msg_constants(name: str) -> dict[str, int]:
    """``NAME=value`` constants declared in ``msg/<name>.msg`` (the contract, read from the source)."""
    out = {}
    for line in (MSG_DIR / f"{name}.msg").read_text().splitlines():
        m = re.match(r"\s*u?int\d+\s+([A-Z][A-Z0-9_]*)\s*=\s*(-?\d+)", line.split("#", 1)[0])
        if m:
            out[m[1]] = int(m[2])
    return out


@pytest.mark.parametrize(("msg", "enum"), [(ControlCommand, ControlStatus), (Explanation, Event)])
def test_message_constants_equal_the_core_enum_one_to_one(msg: type, enum: type[IntEnum]) -> None:
    """Every constant of the .msg file, in the generated class and in the core enum, with the same
    value, none missing on either side, values distinct (a new status added to one is caught)."""
    declared = _msg_constants(msg.__name__)
    assert declared, f"no constants parsed from {msg.__name__}.msg"
    assert declared == {m.name: m.value for m in enum}
    assert {n: getattr(msg, n) for n in declared} == declared
    assert len(set(declared.values())) == len(declared)


def test_every_msg_field_documents_unit_or_meaning() -> None:
    """Each field line of each .msg carries a comment (units and frames are part of the contract)."""
    for path in MSG_DIR.glob("*.msg"):
        for line in path.read_text().splitlines():
            body = line.split("#", 1)[0].strip()
            if body and "=" not in body:  # a field (constants are documented by their name)
                has_comment = "#" in line
                # multi-line comments directly above a field count too
                assert has_comment or _comment_above(path, line), f"{path.name}: '{body}' undocumented"


def _comment_above(path, line: str) -> bool:
    lines = path.read_text().splitlines()
    i = lines.index(line)
    return i > 0 and lines[i - 1].strip().startswith("#")
