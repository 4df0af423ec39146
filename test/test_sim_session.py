"""The simulator node's loop without ROS: clock, rates, command arbitration, safety stop, episodes."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from minipamayo_ros.params import ParameterError, build_config, load_node_yaml
from minipamayo_ros.sim.config import SimulatorConfig
from minipamayo_ros.sim.session import CLOCK_START, SimSession

REPO = Path(__file__).resolve().parents[1]


def test_yaml_defaults_equal_dataclass_defaults() -> None:
    values = load_node_yaml(REPO / "config" / "simulator.yaml", "simulator")
    assert build_config(SimulatorConfig, values) == SimulatorConfig()
    assert set(values) == set(SimulatorConfig.__dataclass_fields__)


def test_config_validation_names_the_parameter() -> None:
    with pytest.raises(ParameterError, match="image_width"):
        build_config(SimulatorConfig, {"image_width": 640})
    with pytest.raises(ParameterError, match="odom_rate_hz"):
        build_config(SimulatorConfig, {"odom_rate_hz": 200.0, "physics_rate_hz": 100.0})
    with pytest.raises(ParameterError, match="control_source"):
        build_config(SimulatorConfig, {"control_source": "joystick"})
    cam = SimulatorConfig(image_width=320, image_height=300).world_config().camera
    assert (cam.width, cam.height) == (320, 300)


def test_rates_and_stamps() -> None:
    s = SimSession(SimulatorConfig(camera_rate_hz=10.0))
    assert s.sim_time == pytest.approx(CLOCK_START)
    out = s.advance(1.0)
    assert s.sim_time == pytest.approx(CLOCK_START + 1.0)
    assert len(out.odom) == 50 and len(out.frames) == 10
    stamps = np.array([o.stamp for o in out.odom])
    np.testing.assert_allclose(np.diff(stamps), 0.02, atol=1e-9)
    f = out.frames[0]
    assert f.image.shape == (256, 256, 3) and f.plan.stamp == f.stamp
    # fractional advances carry over: 0.004 s x 250 = 1 s = 100 physics steps
    for _ in range(250):
        s.advance(0.004)
    assert s.sim_time == pytest.approx(CLOCK_START + 2.0, abs=0.011)


def test_anchor_moves_the_clock_without_simulating_the_gap() -> None:
    """A simulator following another one's /clock starts (and re-synchronises) at that clock."""
    s = SimSession(SimulatorConfig(camera_rate_hz=10.0))
    s.advance(0.005)  # half a physics step pending
    s.anchor(1234.5)
    assert s.sim_time == pytest.approx(1234.5) and s.world.time == 0.0
    out = s.advance(0.5)
    assert len(out.frames) == 5 and out.frames[0].stamp == pytest.approx(1234.6)  # no pending half step
    assert s.sim_time == pytest.approx(1235.0)


def test_no_command_brakes_to_a_stop() -> None:
    s = SimSession(SimulatorConfig(command_timeout=0.3))
    for _ in range(30):  # 3 s at 10 Hz commands
        s.command_control(0.0, 6.0)
        s.advance(0.1)
    assert s.world.state.speed > 4.0 and s.last_source == "vla_control"
    s.advance(0.15)  # 0.25 s after the last command
    assert not s.braking
    s.advance(3.0)
    assert s.braking and s.last_source == "timeout"
    assert s.world.state.speed == pytest.approx(0.0, abs=1e-3)


def test_auto_prefers_control_and_falls_back_to_cmd_vel() -> None:
    s = SimSession(SimulatorConfig(command_timeout=0.3))
    s.command_control(0.1, 5.0)
    s.command_twist(2.0, 0.0)
    s.advance(0.1)
    assert s.last_source == "vla_control"
    s.advance(0.5)  # control stale, twist stale too
    assert s.last_source == "timeout"
    for _ in range(40):
        s.command_twist(4.0, 0.2)
        s.advance(0.05)
    assert s.last_source == "cmd_vel"
    st = s.world.state
    assert st.speed == pytest.approx(4.0, abs=0.1)
    # steering realises the commanded yaw rate through the bicycle model
    assert st.speed * math.tan(st.steer) / s.world_config.vehicle.wheelbase == pytest.approx(0.2, abs=0.01)
    assert not s.command_control(float("nan"), 1.0) and not s.command_twist(1.0, float("inf"))
    only_twist = SimSession(SimulatorConfig(control_source="vla_control"))
    only_twist.command_twist(3.0, 0.0)
    only_twist.advance(0.1)
    assert only_twist.last_source == "timeout"


def test_expert_autopilot_and_episodes() -> None:
    cfg = SimulatorConfig(control_source="expert", episode_seconds=6.0, reset_seed_step=5, seed=3)
    s = SimSession(cfg)
    out = s.advance(5.0)
    assert s.world.state.speed > 3.0 and not out.resets
    before = s.sim_time
    out = s.advance(2.0)
    assert out.resets == [8] and s.seed == 8 and s.episode == 1
    assert len(out.finished) == 1 and out.finished[0].seed == 3 and out.finished[0].episode == 0
    assert out.finished[0].metrics.distance_m > 10.0 and "seed 3" in out.finished[0].line()
    assert s.sim_time == pytest.approx(before + 2.0, abs=0.011)  # clock keeps running
    assert s.world.time < 2.0
    stamps = [o.stamp for o in out.odom]
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False))
    s.reconfigure(replace(cfg, seed=42))
    assert s.seed == 42 and s.episode == 2
    s.reset()
    assert s.seed == 42 and s.episode == 3
