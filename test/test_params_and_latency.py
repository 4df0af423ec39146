"""Parameter declaration/validation core and latency statistics (no ROS)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from minipamayo_ros.latency import LatencyWindow, LoopTiming, summarize
from minipamayo_ros.params import ParameterError, build_config, load_node_yaml, param, param_specs


@dataclass(frozen=True)
class _Config:
    rate_hz: float = param(50.0, "control rate", "Hz", min=10.0, max=200.0, read_only=True)
    depth: int = param(1, "queue depth", min=1, max=10)
    mode: str = param("ackermann", "steering model", choices=["ackermann", "diff_drive"])
    enabled: bool = param(True, "enable output")
    lo: float = param(1.0, "lower bound", "m", min=0.0)
    hi: float = param(2.0, "upper bound", "m", min=0.0)

    def __post_init__(self) -> None:
        if self.lo > self.hi:
            raise ParameterError(f"parameter 'lo' ({self.lo} m) must be <= 'hi' ({self.hi} m)")


def test_defaults_and_specs() -> None:
    cfg = build_config(_Config)
    assert cfg.rate_hz == 50.0 and cfg.mode == "ackermann"
    spec = {s.name: s for s in param_specs(_Config)}
    assert spec["rate_hz"].read_only and spec["rate_hz"].full_description == "control rate [Hz]"


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"rate_hz": 500.0}, "'rate_hz' = 500.0 Hz is invalid: must be <= 200.0"),
        ({"depth": 1.5}, "'depth' = 1.5 is invalid: must be an integer"),
        ({"mode": "tank"}, "must be one of ['ackermann', 'diff_drive']"),
        ({"enabled": "yes"}, "'enabled'"),
        ({"lo": float("nan")}, "must be finite"),
        ({"lo": 3.0}, "'lo' (3.0 m) must be <= 'hi'"),
        ({"rate_hzz": 10.0}, "unknown parameter(s) ['rate_hzz']"),
    ],
)
def test_invalid_values_name_the_parameter(values, fragment) -> None:
    with pytest.raises(ParameterError) as err:
        build_config(_Config, values)
    assert fragment in str(err.value)


def test_int_accepted_for_float() -> None:
    assert build_config(_Config, {"rate_hz": 100}).rate_hz == 100.0


def test_load_node_yaml(tmp_path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("follower:\n  ros__parameters:\n    rate_hz: 20.0\n")
    assert load_node_yaml(f, "follower") == {"rate_hz": 20.0}
    assert load_node_yaml(f, "other") == {}
    # "/**" applies to every node (the node's own section wins); a node takes what it declares
    f.write_text("/**:\n  ros__parameters:\n    wheelbase: 3.0\n    rate_hz: 1.0\n"
                 "/**/follower:\n  ros__parameters:\n    rate_hz: 20.0\n")
    assert load_node_yaml(f, "follower") == {"wheelbase": 3.0, "rate_hz": 20.0}
    assert load_node_yaml(f, "text", declared=["max_tokens"]) == {}


def test_the_vehicle_file_gives_policy_and_follower_the_same_plan_limits() -> None:
    """Issue 19: what the policy's output check accepts is what the follower's input check accepts,
    also with a vehicle file (drive.yaml's "/**" section); every node's config builds from it."""
    from minipamayo_ros.control.config import FollowerConfig
    from minipamayo_ros.policy.config import PolicyConfig
    from minipamayo_ros.replay.lockstep import load_node_config
    from minipamayo_ros.safety.input_limits import InputLimitParams
    from minipamayo_ros.text.config import TextConfig

    policy = load_node_config(PolicyConfig, "policy", "policy.yaml", "drive.yaml")
    follower = load_node_config(FollowerConfig, "follower", "follower.yaml", "drive.yaml")
    load_node_config(TextConfig, "text", "text.yaml", "drive.yaml")  # ignores the vehicle keys
    shared = [s.name for s in param_specs(InputLimitParams)]
    assert {n: getattr(policy, n) for n in shared} == {n: getattr(follower, n) for n in shared}
    assert policy.trajectory_limits("base_link") == follower.trajectory_limits("base_link")
    from minipamayo_ros.safety.trajectory_input import TrajectoryLimits
    assert InputLimitParams().trajectory_limits("base_link") == TrajectoryLimits()  # one set of defaults


def test_summarize_percentiles() -> None:
    s = summarize(np.arange(1, 101, dtype=float))
    assert (s.count, s.p50, s.max) == (100, 50.5, 100.0)
    assert s.p99 == pytest.approx(99.01)
    assert np.isnan(summarize([]).p95)


def test_latency_window_keeps_only_recent() -> None:
    w = LatencyWindow(size=3)
    for v in (100.0, 1.0, 2.0, 3.0):
        w.add(v)
    assert len(w) == 3 and w.summary().max == 3.0


def test_loop_timing_counts_late_ticks_and_keeps_the_longest_gap() -> None:
    t = LoopTiming(period_s=0.02)
    assert t.as_values()["late_ticks"] == "0" and t.as_values()["tick_interval_p99_ms"] == "nan"
    clock = 100.0
    for gap in [0.02] * 10 + [0.045, 0.02, 0.3, 0.02]:  # 45 ms and 300 ms > 2 periods: late
        t.started(clock)
        t.finished(clock + 0.001)
        clock += gap
    t.started(clock)
    v = t.as_values()
    assert t.ticks == 15 and v["late_ticks"] == "2"
    assert float(v["longest_tick_gap_ms"]) == pytest.approx(300.0)
    assert float(v["tick_interval_max_ms"]) == pytest.approx(300.0)
    assert float(v["tick_interval_p50_ms"]) == pytest.approx(20.0)
    assert float(v["tick_work_p99_ms"]) == pytest.approx(1.0)
    t.started(clock + 0.039)  # just under 2 periods: on time
    assert t.late == 2
    with pytest.raises(ValueError):
        LoopTiming(period_s=0.0)
